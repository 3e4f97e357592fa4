pub fn run(_a: &crate::cli::BenchArgs) -> anyhow::Result<()> { anyhow::bail!("todo") }

//! HTTP GET requests made from inside a network namespace: a short-lived thread enters the
//! namespace and makes the request there with `ureq`.

use std::{fs, os::fd::AsRawFd as _, thread, time::Duration};

use ureq::{Agent, http::HeaderMap};

use crate::netns::Netns;

/// An HTTP response (of any status).
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: String,
}

impl Response {
    /// The first value of header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `GET url` with the query parameters `query` (percent-encoded here) and the extra request
/// `headers`, from inside namespace `ns`, never through a proxy; 5 s to connect, 20 s in
/// all. Any status is a response; only failing to get one is an error.
pub fn http_get(
    ns: &Netns,
    url: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<Response, ureq::Error> {
    let ns_path = ns.path();
    let url = url.to_string();
    let query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    thread::spawn(move || -> Result<Response, ureq::Error> {
        let file = fs::File::open(&ns_path)?;
        // SAFETY: setns on this (short-lived) thread only; the socket ureq opens on it is
        // created in the namespace.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let agent: Agent = Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let mut request = agent.get(&url).query_pairs(
            query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        );
        for (k, v) in &headers {
            request = request.header(k, v);
        }
        let mut response = request.call()?;
        Ok(Response {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.body_mut().read_to_string()?,
        })
    })
    .join()
    .map_err(|_| ureq::Error::Io(std::io::Error::other("HTTP thread panicked")))?
}

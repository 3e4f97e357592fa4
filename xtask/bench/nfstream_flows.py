"""Flow metering of a capture with NFStream (C-accelerated), for `cargo xtask bench`.

Prints {"flows": N, "packets": P} as JSON: the bidirectional flows NFStream meters (its
default idle and active timeouts, no L7 dissection, one meter process) and the packets in
them.
"""

import contextlib
import json
import sys

from nfstream import NFStreamer


def main() -> None:
    flows = 0
    packets = 0
    # NFStream prints notes (e.g. on the number of meters) to standard output.
    with contextlib.redirect_stdout(sys.stderr):
        streamer = NFStreamer(
            source=sys.argv[1],
            n_dissections=0,
            statistical_analysis=False,
            n_meters=1,
        )
        for flow in streamer:
            flows += 1
            packets += flow.bidirectional_packets
    print(json.dumps({"flows": flows, "packets": packets}))


if __name__ == "__main__":
    main()

//! AF_XDP receive path: sockets, UMEM, rings and the XDP program. Live capture is issue 6; this crate is the shell it lands in and never imports the analyzer.

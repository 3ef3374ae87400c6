//! Whole capture files (pcap, pcapng, any block) through the reader and the pipeline.
#![no_main]
use analyzer::source::pcap::PcapFile;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let r = Box::new(std::io::Cursor::new(data.to_vec()));
    if let Ok(mut f) = PcapFile::from_reader("fuzz".into(), r, data.len() as u64) {
        let mut p = spanwatch_fuzz::Pipeline::new();
        let st = f.for_each(|frame| p.frame(&frame), |_| {});
        assert!(st.frames <= data.len() as u64);
        p.finish();
    }
});

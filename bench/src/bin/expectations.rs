//! What sharing FTP expectations between workers would cost: a lookup on every new TCP flow in a
//! map all workers share (a `Mutex<HashMap>`, and an `RwLock` for reads), against the per-worker
//! map spanwatch uses (possible because it shards by address pair). Times N lookups per thread
//! with 1 and 2 threads.   usage: expectations [LOOKUPS]

use hashbrown::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

type Key = ([u8; 16], bool, u16);

fn keys(n: usize) -> Vec<Key> {
    (0..n as u32)
        .map(|i| {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            (a, false, (i % 60_000) as u16)
        })
        .collect()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000_000);
    let ks = Arc::new(keys(4096));
    let filled: HashMap<Key, u8> = ks.iter().step_by(2).map(|k| (*k, 1)).collect();
    for threads in [1usize, 2] {
        // Per-worker map: no sharing at all.
        let t = Instant::now();
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (m, ks) = (filled.clone(), ks.clone());
                std::thread::spawn(move || (0..n).filter(|i| m.contains_key(&ks[i & 4095])).count())
            })
            .collect();
        let hits: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        let local = t.elapsed().as_secs_f64() * 1e9 / n as f64;
        let m = Arc::new(Mutex::new(filled.clone()));
        let t = Instant::now();
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (m, ks) = (m.clone(), ks.clone());
                std::thread::spawn(move || {
                    (0..n)
                        .filter(|i| m.lock().unwrap().contains_key(&ks[i & 4095]))
                        .count()
                })
            })
            .collect();
        let h2: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        let mutex = t.elapsed().as_secs_f64() * 1e9 / n as f64;
        let r = Arc::new(RwLock::new(filled.clone()));
        let t = Instant::now();
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (r, ks) = (r.clone(), ks.clone());
                std::thread::spawn(move || {
                    (0..n)
                        .filter(|i| r.read().unwrap().contains_key(&ks[i & 4095]))
                        .count()
                })
            })
            .collect();
        let h3: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        let rw = t.elapsed().as_secs_f64() * 1e9 / n as f64;
        assert_eq!((hits, hits), (h2, h3));
        println!("{threads} thread(s): per-worker map {local:.1} ns/lookup, shared Mutex {mutex:.1} ns, shared RwLock {rw:.1} ns");
    }
}

//! Reading intervals in a hot loop from several threads: the handle is cheap to clone and the
//! read path takes no lock and makes no syscall beyond the vDSO clock read.
//!
//! `TRUETIME_PAGE=/path/to/page cargo run --release -p ttclient --example hot_loop`

use std::time::Instant;
use ttclient::TrueTime;

fn main() {
    let tt = match TrueTime::connect_default() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("no TrueTime source ({e}); start timed or ttlab and set TRUETIME_PAGE");
            return;
        }
    };
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let tt = tt.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let (mut ok, mut refused, mut widest) = (0u64, 0u64, 0i64);
                for _ in 0..2_000_000 {
                    match tt.now() {
                        Ok(iv) => {
                            ok += 1;
                            widest = widest.max(iv.epsilon().as_nanos());
                        }
                        Err(_) => refused += 1,
                    }
                }
                let ns = t0.elapsed().as_nanos() as f64 / (ok + refused) as f64;
                println!("thread {i}: {ok} intervals, {refused} refused, {ns:.1} ns per read, widest ε {widest} ns");
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

//! A transaction that commits with Spanner's commit-wait: pick `s ≥ TT.now().latest`, make the
//! write durable, wait until `TT.after(s)`, then acknowledge. Any transaction that starts after
//! the acknowledgement (in real time) gets a larger timestamp — external consistency.
//!
//! Run against a live stack (`cargo run --release --bin ttlab`, page under its --dir) with
//! `TRUETIME_PAGE=/path/to/page cargo run -p ttclient --example commit_wait_txn`.

use std::time::Duration;
use ttclient::TrueTime;

fn main() {
    let tt = match TrueTime::connect_default() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("no TrueTime source ({e}); start timed or ttlab and set TRUETIME_PAGE");
            return;
        }
    };
    if let Err(e) = tt.wait_until_synchronized(Duration::from_secs(30)) {
        eprintln!("TrueTime not usable: {e}");
        return;
    }
    for txn in 0..5 {
        // 1. Acquire locks (elided). 2. Choose the commit timestamp.
        let s = match tt.commit_timestamp() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("txn {txn}: cannot pick a timestamp: {e}; abort");
                continue;
            }
        };
        // 3. Make the write durable (replicate, fsync) — overlapping with the wait in a real
        //    system. 4. Commit wait.
        match tt.commit_wait_blocking(s) {
            Ok(w) => println!(
                "txn {txn}: committed at {s}, waited {:?} (ε now ±{})",
                w.waited,
                w.interval.epsilon()
            ),
            Err(e) => eprintln!("txn {txn}: commit wait failed ({e}); do not acknowledge"),
        }
        // 5. Release locks, acknowledge the client.
    }
}

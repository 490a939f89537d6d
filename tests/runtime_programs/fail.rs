// Fails the way its first argument says, for tests/diagnostics/test_runtimes.py.
use std::io::Write;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        // A real ENOSPC, unwrapped: the panic message carries io::ErrorKind::StorageFull.
        "devfull" => {
            let mut device = std::fs::File::create("/dev/full").unwrap();
            device.write_all(&[0u8; 4096]).unwrap();
        }
        // 1 GiB, touched, under the RLIMIT_AS the test sets: the allocator fails and aborts.
        "alloc" => {
            let hoard = vec![1u8; 1 << 30];
            println!("{}", hoard.iter().map(|&b| b as u64).sum::<u64>());
        }
        // A plain panic whose message names no condition.
        _ => {
            let shard: Option<&str> = None;
            println!("{}", shard.expect("shard manifest missing"));
        }
    }
}

//! The PTP structs and ioctl request numbers in `ttsys::phc` against the kernel's uapi header:
//! a C program including `<linux/ptp_clock.h>` is compiled with the system C compiler and
//! prints what the kernel expects.

use std::process::Command;

#[test]
fn ptp_structs_and_requests_match_the_kernel_uapi_header() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("ptp.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <stddef.h>
#include <linux/ptp_clock.h>
int main(void) {
    printf("%zu %zu %zu %zu\n", sizeof(struct ptp_clock_time), sizeof(struct ptp_sys_offset),
           sizeof(struct ptp_sys_offset_extended), sizeof(struct ptp_sys_offset_precise));
    printf("%lu %lu %lu\n", (unsigned long)PTP_SYS_OFFSET, (unsigned long)PTP_SYS_OFFSET_PRECISE,
           (unsigned long)PTP_SYS_OFFSET_EXTENDED);
    printf("%zu %zu %d\n", offsetof(struct ptp_sys_offset_precise, sys_monoraw),
           offsetof(struct ptp_sys_offset_extended, ts), PTP_MAX_SAMPLES);
    return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("ptp");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("{cc}: {e} (the uapi check needs a C compiler)"));
    assert!(
        out.status.success(),
        "{cc} failed (needs the kernel uapi headers, linux-libc-dev): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let nums: Vec<u64> = text
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    use std::mem::{offset_of, size_of};
    use ttsys::phc::*;
    let ours = [
        size_of::<PtpClockTime>() as u64,
        size_of::<PtpSysOffset>() as u64,
        size_of::<PtpSysOffsetExtended>() as u64,
        size_of::<PtpSysOffsetPrecise>() as u64,
        PTP_SYS_OFFSET,
        PTP_SYS_OFFSET_PRECISE,
        PTP_SYS_OFFSET_EXTENDED,
        offset_of!(PtpSysOffsetPrecise, sys_monoraw) as u64,
        offset_of!(PtpSysOffsetExtended, ts) as u64,
        PTP_MAX_SAMPLES as u64,
    ];
    assert_eq!(nums, ours, "kernel (left) vs ttsys::phc (right)");
    // The numbers as the kernel documents them, for the reader.
    assert_eq!(PTP_SYS_OFFSET_PRECISE, 0xc040_3d08);
}

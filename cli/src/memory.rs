//! The process's memory settings, applied before anything else runs.

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`).
///
/// mimalloc asks the kernel for huge pages (`madvise(MADV_HUGEPAGE)`) on the memory it
/// maps, and librdkafka, allocating through it, keeps taking fresh memory for fetched and
/// decompressed batches. The first touch of each fresh 2 MiB region then zeroes all of it:
/// `clear_page_erms` under librdkafka's LZ4 decompression was 10–15 % of a worker's CPU,
/// and partly used huge pages count whole in its RSS. BENCHMARKS.md, "Consumer". On a
/// kernel without the call, a warning says so and nothing else changes.
pub fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("warning: transparent huge pages stay on (prctl PR_SET_THP_DISABLE: {e})");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn huge_pages_are_off_after_the_call() {
        super::without_huge_pages();
        assert!(nix::sys::prctl::get_thp_disable().expect("PR_GET_THP_DISABLE"));
    }
}

"""The reliability and security suite (issue 8): crashes, concurrency, disk faults, fuzzing, hostile peers."""

package store

// RetryMax is the longest wait between retries of a failed commit.
const RetryMax = retryMax

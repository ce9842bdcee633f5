"""What each device runs (DESIGN §8): probes over SSH, their history, drift against NixDeck's
builds, closure diffs before a deploy and health checks after activation."""

"""The baselines, written the way a user would write them. Each runs as its own process."""

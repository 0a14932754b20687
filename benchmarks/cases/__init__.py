"""One module per group of targets; each case is `fn(ctx) -> list[Row]`."""

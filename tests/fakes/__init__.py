"""Stand-ins for outside systems: real programs and servers speaking the real protocols."""

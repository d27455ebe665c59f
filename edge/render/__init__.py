"""What the user sees: the overlay (pure numpy drawing) and the display sinks (window, video, snapshots)."""

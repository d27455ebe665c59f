"""The running loop: composition root (app), threads and channels (pipeline), hand-off policies,
the run report and the bench."""

"""B-mode phantom tools: one frame of every preset and event in a contact sheet (``contact_sheet``),
and us-quality's verdicts on phantom frames (``realism``). See docs/phantom.md."""

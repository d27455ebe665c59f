"""De-identification tools: synthetic marker studies and the checks that find a marker left
(``markers``, used by the de-identification tests), and the comparison with another de-identifier
(``compare``). See docs/deid.md."""

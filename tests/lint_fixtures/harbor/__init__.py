"""A Harbor-style support service, as it looked before flagmw: toggles read from
process environment variables in several places, under two different names."""

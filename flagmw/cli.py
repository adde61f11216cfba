"""The `flagmw` command (placeholder until the CLI lands)."""


def main() -> None:
    raise SystemExit("flagmw: the command line is not built yet")

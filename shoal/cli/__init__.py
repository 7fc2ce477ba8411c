"""The `shoal` command line. Each module owns one family of commands and exports them in
`COMMANDS`; `shoal.cli.main` registers every family. Faces talk to the API (or, for the
daemonless container commands, to the runtime layer directly, as podman does)."""

"""The `parrot` command line: glue between parrot_core, sim and parrot_bringup."""

"""Parrot's Fast DDS profile (`fastdds.xml` beside this module): large images across processes.

Fast DDS's default shared-memory segment is 512 KB, and a publisher drops every message that
does not fit (a 640x480 rgb8 image is 921 KB: measured 32 of 90 frames delivered at 30 Hz;
with this profile 90 of 90, and 90 of 90 at 1280x720). The segment is the *publisher's*, so
the profile must be loaded by the process that publishes the images.
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILE = Path(__file__).with_name("fastdds.xml")
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def use_parrot_profile(environ=None) -> str | None:
    """Point Fast DDS at Parrot's profile unless the user chose one (or another RMW).

    Call before the process's first DDS participant exists. Returns the profile in effect.
    """
    env = os.environ if environ is None else environ
    for var in PROFILE_VARS:
        if env.get(var):
            return env[var]
    if env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return None
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    return str(PROFILE)

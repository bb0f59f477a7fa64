"""Host target: runs the integer form on the build machine; tvmse's bit-exactness oracle."""

from tvmse.targets.host.reference import HostReference

__all__ = ["HostReference"]

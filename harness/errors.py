"""The harness's errors: each carries one line a person can act on."""


class NetconformError(Exception):
    """Base of every error the harness raises on purpose."""


class SandboxError(NetconformError):
    """The sandbox cannot be made (no user namespaces, no privileges...)."""


class LabError(NetconformError):
    """A lab description is wrong: the message names the file, the field and the fault."""


class BuildError(NetconformError):
    """The kernel refused a step of a lab build; the message names the step."""


class CapabilityMissing(NetconformError):
    """The kernel or the system lacks something a test needs (the message says what)."""


class ProbeError(NetconformError):
    """The probe engine was used wrongly (unknown interface, socket not listening...)."""


class VmError(NetconformError):
    """A VM run cannot go on (no vagrant, provider error, box missing, ssh failure...)."""

"""The exceptions jaxopt_mat raises.

Every error a user can cause derives from :class:`JaxOptMatError`; the CLI
turns each into a one-line message and a non-zero exit code.
"""


class JaxOptMatError(Exception):
    """Base class of every error jaxopt_mat raises on purpose."""

    exit_code = 1


class ConfigError(JaxOptMatError):
    """A campaign configuration is malformed or inconsistent."""

    exit_code = 2


class DataError(JaxOptMatError):
    """Observations or candidate tables are malformed."""

    exit_code = 3


class InfeasibleError(JaxOptMatError):
    """The bounds and linear constraints leave no feasible point."""

    exit_code = 2


class NumericalError(JaxOptMatError):
    """A numerical step failed (e.g. a Cholesky factorisation despite jitter)."""

    exit_code = 4


class CampaignError(JaxOptMatError):
    """A campaign folder is missing, incomplete or in an unexpected state."""

    exit_code = 5

"""jaxopt_mat: closed-loop Bayesian optimization for materials, in JAX.

The functional core (pure functions over pytrees, explicit PRNG keys):

    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)   # GP work wants float64
    >>> import jaxopt_mat as jm
    >>> space = jm.SearchSpace([4, 10], [45, 40], names=["q_agno3", "q_pva"], A=[[1, 1]], b=[60])
    >>> model = jm.fit_gp(x, y, key=jax.random.key(0), low=space.low, high=space.high)
    >>> mean, var = model.predict(x_new)

A campaign folder from Python (the same files, validation and batches as the
``jaxopt-mat`` command line):

    >>> camp = jm.Campaign.create("runs/agnp", config="campaign.toml")
    >>> batch = camp.suggest(15)          # a pandas DataFrame
    >>> batch["yield"] = measure(batch)
    >>> camp.observe(batch)
"""

from jaxopt_mat.acquisition.analytic import (
    expected_improvement,
    log_expected_improvement,
    log_probability_of_improvement,
    probability_of_improvement,
    upper_confidence_bound,
)
from jaxopt_mat.acquisition.batch import Batch, local_penalization_batch
from jaxopt_mat.acquisition.ehvi import (
    ehvi_batch,
    expected_hypervolume_improvement,
    q_expected_hypervolume_improvement,
    score_pool,
)
from jaxopt_mat.acquisition.pool_ehvi import greedy_pool_batch, pool_ehvi_batch
from jaxopt_mat.api import Campaign, Status
from jaxopt_mat.chunked import map_rows
from jaxopt_mat.embedding import kernel_mean_embedding
from jaxopt_mat.objectives import spectrum_loss
from jaxopt_mat.data import combine_replicates
from jaxopt_mat.design import latin_hypercube, random_design
from jaxopt_mat.errors import (
    CampaignError,
    ConfigError,
    DataError,
    InfeasibleError,
    JaxOptMatError,
    NumericalError,
    RepeatedBatchError,
)
from jaxopt_mat.input_kinds import InputKind
from jaxopt_mat.optimize import MaximizeResult, maximize, maximize_grid, maximize_random
from jaxopt_mat.pareto import hypervolume, non_dominated_mask
from jaxopt_mat.runner import RunSummary, run
from jaxopt_mat.space import SearchSpace
from jaxopt_mat.surrogates.base import Posterior
from jaxopt_mat.surrogates.gp import GPModel, fit_gp
from jaxopt_mat.surrogates.spectrum_gp import SpectrumGP, fit_spectrum_gp

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "Campaign",
    "CampaignError",
    "ConfigError",
    "DataError",
    "GPModel",
    "InfeasibleError",
    "InputKind",
    "JaxOptMatError",
    "MaximizeResult",
    "NumericalError",
    "Posterior",
    "RepeatedBatchError",
    "RunSummary",
    "SearchSpace",
    "SpectrumGP",
    "Status",
    "__version__",
    "combine_replicates",
    "ehvi_batch",
    "expected_hypervolume_improvement",
    "expected_improvement",
    "fit_gp",
    "fit_spectrum_gp",
    "greedy_pool_batch",
    "pool_ehvi_batch",
    "hypervolume",
    "kernel_mean_embedding",
    "latin_hypercube",
    "local_penalization_batch",
    "log_expected_improvement",
    "log_probability_of_improvement",
    "map_rows",
    "maximize",
    "maximize_grid",
    "maximize_random",
    "non_dominated_mask",
    "probability_of_improvement",
    "q_expected_hypervolume_improvement",
    "random_design",
    "run",
    "score_pool",
    "spectrum_loss",
    "upper_confidence_bound",
]

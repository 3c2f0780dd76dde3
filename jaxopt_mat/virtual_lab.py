"""Simulated laboratories for demos, tests and benchmarks.

:class:`SilverLab` is a differentiable model of the silver-nanoparticle flow
synthesis written for this package: five flow rates (``q_agno3, q_pva, q_tsc,
q_seed`` in % of the aqueous flow, ``q_tot`` in µL/min) set a particle
population, and the population's UV-Vis absorbance follows from quasi-static
electrodynamics.

Chemistry (smooth, qualitative): silver nitrate per seed sets how far the seeds
grow; citrate (TSC) directs growth into flat triangular prisms, more so when
growth is strong; PVA caps the particles, narrowing the shape distribution and
limiting lateral growth; a higher total flow shortens the residence time and so
the growth; the amount of silver sets the number of particles and so the
absorbance. Physics: silver's dielectric function is a Drude model with an
interband background and size-dependent surface damping (Kreibig & Vollmer,
*Optical Properties of Metal Clusters*, 1995); spheres absorb as dipoles, and
prisms are modelled as oblate spheroids of the same aspect ratio with Gans'
depolarisation factors (Bohren & Huffman, *Absorption and Scattering of Light
by Small Particles*, 1983, ch. 5), averaged over orientations and over a
log-normal spread of aspect ratios. Spheres give the 400 nm band; prisms move
the in-plane band from about 450 nm to beyond 750 nm as they get flatter.

:class:`NetworkLab` replays a trained spectrum network (the study's own,
``agbonn_dnn.npz``) as an oracle.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.errors import DataError

INPUT_NAMES = ("q_agno3", "q_pva", "q_tsc", "q_seed", "q_tot")
LOW = np.array([4.0, 10.0, 0.5, 0.5, 200.0])
HIGH = np.array([45.0, 40.0, 30.0, 20.0, 1000.0])
# The four aqueous flows are percentages: together at most 90 %.
CONSTRAINT_A = np.array([[1.0, 1.0, 1.0, 1.0, 0.0]])
CONSTRAINT_B = np.array([90.0])
WAVELENGTHS = np.arange(380.0, 801.0)

_HC_EV_NM = 1239.84193  # photon energy (eV) times wavelength (nm)
_EPS_INF = 5.0  # interband background of silver
_OMEGA_P = 9.0  # plasma energy, eV
_GAMMA_BULK = 0.021  # bulk damping, eV
_HBAR_VF = 0.915  # hbar * Fermi velocity of silver, eV nm (surface damping A = 1)
_EPS_MEDIUM = 1.333**2  # water


def silver_permittivity(energy_ev, radius_nm):
    """Drude permittivity of silver with surface damping for particles of ``radius_nm``."""
    gamma = _GAMMA_BULK + _HBAR_VF / radius_nm
    return _EPS_INF - _OMEGA_P**2 / (energy_ev**2 + 1j * gamma * energy_ev)


def oblate_depolarization(aspect):
    """Depolarisation factors ``(L_in_plane, L_axis)`` of an oblate spheroid, aspect ratio >= 1."""
    aspect = jnp.maximum(aspect, 1.0 + 1e-6)
    e2 = 1.0 - 1.0 / aspect**2
    g = jnp.sqrt((1.0 - e2) / e2)
    l_plane = g / (2.0 * e2) * (jnp.pi / 2.0 - jnp.arctan(g)) - g**2 / 2.0
    return l_plane, 1.0 - 2.0 * l_plane


def _absorption_per_volume(eps, factors, weights, wavelength_nm):
    """Orientation-averaged dipole extinction per unit particle volume (1/nm)."""
    k = 2.0 * jnp.pi * jnp.sqrt(_EPS_MEDIUM) / wavelength_nm
    total = 0.0
    for L, w in zip(factors, weights):
        alpha = (eps - _EPS_MEDIUM) / (_EPS_MEDIUM + L * (eps - _EPS_MEDIUM))
        total = total + w * jnp.imag(alpha)
    return k * total


def population(x):
    """Particle population of one recipe ``x`` (5,): a dict of smooth functions of the flows."""
    q_agno3, q_pva, q_tsc, q_seed, q_tot = x[0], x[1], x[2], x[3], x[4]
    residence = (600.0 / q_tot) ** 0.3
    growth = q_agno3 / (q_seed + 1.0) * residence  # silver per seed, times reaction time
    prism_fraction = jax.nn.sigmoid(1.6 * jnp.log(q_tsc / 5.0) + 1.2 * jnp.log(growth / 2.0))
    capping = 1.0 + q_pva / 25.0
    aspect = 1.5 + 7.0 * jnp.sqrt(growth) / (capping * (1.0 + 0.08 * growth))
    spread = 0.25 / capping  # log-normal spread of the aspect ratio
    sphere_radius = 3.0 + 6.0 * growth ** (1.0 / 3.0)
    prism_radius = sphere_radius * aspect ** (1.0 / 3.0)
    silver = q_agno3 / 45.0 * (1.0 - 0.35 * q_seed / 20.0) * (0.7 + 0.3 * residence)
    return dict(prism_fraction=prism_fraction, aspect=aspect, spread=spread, sphere_radius=sphere_radius,
                prism_radius=prism_radius, silver=silver)


_AR_NODES = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])  # quadrature of the log-normal spread
_AR_WEIGHTS = np.exp(-0.5 * _AR_NODES**2) / np.exp(-0.5 * _AR_NODES**2).sum()


def absorbance(x, wavelengths=WAVELENGTHS, *, scale: float = 0.007):
    """Noise-free absorbance spectrum of one recipe ``x`` (5,) at ``wavelengths`` (nm)."""
    wl = jnp.asarray(wavelengths)
    energy = _HC_EV_NM / wl
    p = population(x)
    eps_sphere = silver_permittivity(energy, p["sphere_radius"])
    sphere = _absorption_per_volume(eps_sphere, [1.0 / 3.0], [1.0], wl)
    eps_prism = silver_permittivity(energy, p["prism_radius"] / 2.0)
    prism = 0.0
    for node, weight in zip(_AR_NODES, _AR_WEIGHTS):
        ar = p["aspect"] * jnp.exp(p["spread"] * node)
        l_plane, l_axis = oblate_depolarization(ar)
        prism = prism + weight * _absorption_per_volume(eps_prism, [l_plane, l_plane, l_axis], [1 / 3, 1 / 3, 1 / 3], wl)
    mix = (1.0 - p["prism_fraction"]) * sphere + p["prism_fraction"] * prism
    # Sub-linear in silver: at high loading more of it ends in large, weakly absorbing aggregates.
    return scale * p["silver"] ** 0.6 * mix * 1000.0 / 3.0


# Compiled once per input shape: run op by op, each of the lab's many small operations is compiled on its own.
_absorbance_rows = jax.jit(jax.vmap(absorbance, in_axes=(0, None)))


@dataclasses.dataclass(frozen=True)
class SilverLab:
    """The built-in virtual laboratory: recipes (n, 5) -> absorbance spectra (n, 421).

    Measurements add the noise of a droplet platform: a few-percent fluctuation
    of each flow, a drift of the overall intensity, and detector noise, tuned so
    that replicate losses of a good recipe scatter with a standard deviation near
    0.02, like the study's droplet replicates.

    Example:
        >>> lab = SilverLab()
        >>> spectra = lab.spectra(jnp.array([[20.0, 25.0, 10.0, 5.0, 600.0]]))
    """

    flow_noise: float = 0.03
    intensity_noise: float = 0.04
    detector_noise: float = 0.006
    wavelengths: np.ndarray = dataclasses.field(default_factory=lambda: WAVELENGTHS.copy())

    @property
    def names(self):
        return INPUT_NAMES

    def spectra(self, x):
        """Noise-free spectra, differentiable in ``x`` (physical units, (n, 5))."""
        return _absorbance_rows(jnp.asarray(x), jnp.asarray(self.wavelengths))

    def measure(self, x, *, rng: np.random.Generator):
        """Noisy spectra of the recipes ``x`` (n, 5), as the platform would record them."""
        x = np.asarray(x, dtype=np.float64)
        jittered = x * (1.0 + self.flow_noise * rng.standard_normal(x.shape))
        jittered = np.clip(jittered, LOW * 0.9, HIGH * 1.1)
        s = np.asarray(self.spectra(jittered))
        s = s * np.exp(self.intensity_noise * rng.standard_normal((s.shape[0], 1)))
        return s + self.detector_noise * rng.standard_normal(s.shape)


def load_spectrum_network(path) -> dict:
    """Read the study's trained network (``W0..W4``, ``b0..b4``, ``wavelength_nm``) from an .npz file.

    Raises:
        DataError: if the file is missing or lacks an array.
    """
    path = Path(path)
    try:
        with np.load(path) as f:
            params = {k: np.asarray(f[k]) for k in f.files}
    except FileNotFoundError:
        raise DataError(f"network file not found: {path}") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    need = [f"W{i}" for i in range(5)] + [f"b{i}" for i in range(5)] + ["wavelength_nm"]
    missing = [k for k in need if k not in params]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}")
    return params


def mlp_spectra(params: dict, x):
    """Forward pass of the study's network on raw flows ``x`` (n, 5): ReLU MLP, linear output."""
    h = x
    for i in range(4):
        h = jax.nn.relu(h @ params[f"W{i}"] + params[f"b{i}"])
    return h @ params["W4"] + params["b4"]


@dataclasses.dataclass(frozen=True)
class NetworkLab:
    """A lab answered by a trained spectrum network, with the same measurement noise model."""

    params: dict
    flow_noise: float = 0.03
    intensity_noise: float = 0.04
    detector_noise: float = 0.006

    @classmethod
    def from_npz(cls, path, **noise) -> "NetworkLab":
        raw = load_spectrum_network(path)
        params = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in raw.items() if k != "wavelength_nm"}
        return cls({**params, "wavelength_nm": raw["wavelength_nm"]}, **noise)

    @property
    def names(self):
        return INPUT_NAMES

    @property
    def wavelengths(self):
        return np.asarray(self.params["wavelength_nm"])

    def spectra(self, x):
        return mlp_spectra(self.params, jnp.asarray(x, dtype=jnp.float32))

    def measure(self, x, *, rng: np.random.Generator):
        x = np.asarray(x, dtype=np.float64)
        jittered = x * (1.0 + self.flow_noise * rng.standard_normal(x.shape))
        s = np.asarray(self.spectra(jittered), dtype=np.float64)
        s = s * np.exp(self.intensity_noise * rng.standard_normal((s.shape[0], 1)))
        return s + self.detector_noise * rng.standard_normal(s.shape)


def peak_wavelength(spectra, wavelengths=WAVELENGTHS):
    """Wavelength of each spectrum's maximum."""
    return np.asarray(wavelengths)[np.argmax(np.asarray(spectra), axis=-1)]



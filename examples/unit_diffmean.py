"""A minimal plug-in control method, loaded without editing steer-pu:

    steer-pu run --method unit_diffmean:UnitDiffMean --concepts ocean --out runs/unit

(with this folder on PYTHONPATH, or the module installed in your own package).
It is DiffMean rescaled to unit length, so one strength means the same step size for
every concept. A plug-in subclasses ``steer_pu.methods.Method``: it names itself, lists
its forms and declares its strength grid up front, and returns an intervention from
``fit``. Everything else — sweeps, scoring, resumable runs, submissions — is the harness's.
"""

from __future__ import annotations

from steer_pu.interventions import VectorIntervention
from steer_pu.methods import DiffMean, Method


class UnitDiffMean(Method):
    name = "unit_diffmean"
    forms = ("vector",)
    default_strengths = {"vector": (-8.0, -4.0, 4.0, 8.0, 16.0, 32.0)}

    def default_hyperparams(self) -> dict:
        return {"norm": 1.0}  # every hyper-parameter is overridable: --hp norm=2

    def fit(self, model, fmt, layer, train, seed, card=None) -> VectorIntervention:
        vector = DiffMean().fit(model, fmt, layer, train, seed).vector
        return VectorIntervention(layer, {"vector": vector / vector.norm() * float(self.hyperparams["norm"])})

import json, sys
import numpy as np
import engine.cleanup as C
import engine.foot_cleanup as F
from training.evaluation.run import evaluate
variant = sys.argv[1]
if variant == "nofloor":
    C.floor_feet = lambda p, c, legs, blend=3, floor=0.0: np.array(p, dtype=np.float64)
elif variant == "ankleonly":
    orig = F.pin_feet
    def pin(positions, contacts, legs, blend=3, fps=None):
        legs = [F.LegChain(l.hip, l.knee, l.ankle, None, l.ankle_contact, l.toe_contact) for l in legs]
        return orig(positions, contacts, legs, blend=blend, fps=fps)
    C.pin_feet = pin
elif variant == "nofloor_ankleonly":
    C.floor_feet = lambda p, c, legs, blend=3, floor=0.0: np.array(p, dtype=np.float64)
    orig = F.pin_feet
    def pin(positions, contacts, legs, blend=3, fps=None):
        legs = [F.LegChain(l.hip, l.knee, l.ankle, None, l.ankle_contact, l.toe_contact) for l in legs]
        return orig(positions, contacts, legs, blend=blend, fps=fps)
    C.pin_feet = pin
r = evaluate("engine/checkpoints/default", "data/bandai-hml", "/work/scratch/evaluator", split="val",
             replications=1, mm=False, device="cpu")
r.save(f"/work/scratch/cpu/{variant}.json", None)
g = r.rows["generated"]
print(variant, {k: round(v.mean, 4) for k, v in g.items() if v is not None})

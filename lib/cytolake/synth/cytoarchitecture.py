"""The laminar signature of every area in the synthetic world: what makes an area an area.

Real cytoarchitectonic areas are told apart by their laminar pattern in cell-body stained sections:
the relative thickness of the layers, how densely each is packed with cell bodies and how large they
are, whether an inner granular layer IV exists at all, and local bands (Betz cells in layer V of the
motor cortex, the cell-sparse stria of Gennari inside layer IV of V1, the cell islands of layer II of
the entorhinal cortex). This module holds those signatures for every area of the Juelich maps, the
reasoning behind them, and the inter-individual variation that no atlas can know. Nothing here is
fitted to any score of the pipeline: the values are fixed by the anatomy below.

Sources (values are encodings of their descriptions and ranges, not copied tables):
- von Economo & Koskinas (1925), transl. Triarhou (2008): the five fundamental types of isocortex
  (1 agranular, 2 frontal, 3 parietal, 4 polar, 5 granular koniocortex), layer thickness fractions
  (homotypical isocortex roughly I 0.09, II 0.07, III 0.30, IV 0.09, V 0.22, VI 0.23 of the depth),
  neuron densities from ~10,000 /mm3 (agranular motor) to >100,000 /mm3 (granular koniocortex layer IV),
  soma sizes from 4-8 um (granule cells) over 10-30 um (pyramids of III/V) to 50-100 um (Betz cells).
- Palomero-Gallagher & Zilles (2019, NeuroImage 197) and Amunts & Zilles (2015, Neuron 88): the
  criteria that separate neighbouring areas (presence and width of IV, relative thickness of III and
  V, size of III/V pyramids, sublayers and bands).
- Area-level descriptions from the mapping studies behind the Juelich maps: Geyer et al. 1996
  (BA4a/4p: agranular, Betz cells, 4p thinner with fewer Betz cells), Geyer et al. 1999 and Grefkes
  et al. 2001 (BA3a transitional thin IV; BA3b koniocortex; BA1 wider III, less dense IV; BA2 larger
  III pyramids), Amunts et al. 1999 (BA44 dysgranular, BA45 granular), Morosan et al. 2001 (TE1.0
  koniocortex, TE1.1 and TE1.2 less granular), Eickhoff et al. 2006 (OP1-OP4; OP4 dysgranular with
  large pyramids), Caspers et al. 2006 (PF/PFt large III pyramids, PGa/PGp granular, PFop/PFcm thin
  and less laminated), Scheperjans et al. 2008 (area 5: giant pyramids in Vb; 7: granular),
  Choi et al. 2006 (hIP1/hIP2), Kurth et al. 2010 (insula: Id1 dysgranular, Ig1/Ig2 granular),
  Amunts et al. 2005 (hippocampal formation and amygdala: allocortex and nuclei, not six layers),
  Amunts et al. 2000 (V1 stria of Gennari, V2 dense III).

Rendering scale. A section is `synth.section_thickness_um` thick (20 um, the poster's), so a pixel of s
um holds s^2 x 20 um^3 of tissue: at 40 um/px about 1 neuron at 30,000 /mm3. Each cell body darkens
its pixel by its projected area (Beer-Lambert, `texture.render_section`), so at 30-40 um/px a layer's
grey level follows density x soma area and its graininess follows soma size: the laminar pattern is
visible although single cells are not resolved (as in the poster's 16-20 um overview scans).

Variability. Each brain's layer thicknesses vary per layer by a factor exp(N(0, 0.10)) and its
densities by exp(N(0, 0.10)), soma sizes brain-wide by exp(N(0, 0.05)): roughly the inter-subject
spread of layer widths and cell packing in the studies above (coefficients of variation of 10-20%
between the 10 brains of each mapping study), small against the differences between types but
not against those within a family, so neighbours of one family stay hard. Where the areas are in a
brain is the brains module's business (its own parcellation and deformation); how a section is
stained, cut and damaged is the section model's (`texture.SectionStyle`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

LAMINAE = ("I", "II", "III", "IV", "Va", "Vb", "VI")  # V split in two: Betz and giant pyramids sit in Vb
GLIA_PER_MM3 = 20_000  # small (6 um) glial nuclei in every layer of grey matter
GLIA_UM = 6.0
WHITE_GLIA_PER_MM3 = 45_000  # interfascicular oligodendrocytes: white matter is pale but not empty


@dataclass(frozen=True)
class Signature:
    """One area's laminar pattern, pial surface to white matter.

    thickness: fraction of the cortical depth per lamina (0 = absent, e.g. IV in agranular cortex);
    density: neurons per mm^3 per lamina; soma_um: mean soma diameter per lamina;
    band: an optional thin band (start, end as depth fractions, density factor, soma factor) laid over
    the laminae, e.g. the cell-sparse stria of Gennari; islands: clustering of layer II cells into
    islands (entorhinal cortex), 0 = none, 1 = strong."""

    thickness: tuple[float, ...]
    density: tuple[float, ...]
    soma_um: tuple[float, ...]
    band: tuple[float, float, float, float] | None = None
    islands: float = 0.0
    thickness_mm: float = 2.6  # cortical depth, pial surface to white matter

    def __post_init__(self):
        if not (len(self.thickness) == len(self.density) == len(self.soma_um) == len(LAMINAE)):
            raise ValueError(f"a signature needs {len(LAMINAE)} values per property")
        if abs(sum(self.thickness) - 1.0) > 1e-6:
            raise ValueError(f"thickness fractions must sum to 1, got {sum(self.thickness):.4f}")


def _sig(thickness, density_k, soma_um, **kw) -> Signature:
    t = np.asarray(thickness, float)
    return Signature(tuple(t / t.sum()), tuple(1000.0 * np.asarray(density_k, float)), tuple(map(float, soma_um)), **kw)


# The fundamental types (von Economo & Koskinas). Densities in thousands of neurons per mm^3.
#                    I     II    III   IV    Va    Vb    VI
AGRANULAR = _sig((0.08, 0.05, 0.34, 0.00, 0.12, 0.13, 0.28), (4, 40, 20, 0, 16, 14, 22), (7, 11, 22, 0, 20, 24, 15),
                 thickness_mm=3.6)
FRONTAL = _sig((0.08, 0.06, 0.32, 0.05, 0.12, 0.12, 0.25), (4, 50, 26, 45, 18, 16, 24), (7, 10, 20, 8, 18, 20, 14),
               thickness_mm=2.9)
PARIETAL = _sig((0.09, 0.07, 0.30, 0.09, 0.11, 0.11, 0.23), (4, 60, 32, 70, 22, 18, 26), (7, 10, 17, 8, 16, 18, 13),
                thickness_mm=2.6)
POLAR = _sig((0.10, 0.09, 0.27, 0.12, 0.10, 0.10, 0.22), (4, 70, 40, 90, 26, 22, 30), (7, 10, 14, 8, 14, 15, 12),
             thickness_mm=2.3)
KONIO = _sig((0.10, 0.10, 0.22, 0.18, 0.09, 0.08, 0.23), (4, 90, 55, 130, 30, 25, 34), (7, 10, 12, 8, 13, 14, 11),
             thickness_mm=1.9)


def _vary(base: Signature, thickness=(), density=(), soma=(), depth: float = 1.0, **kw) -> Signature:
    """`base` with laminae scaled: each of thickness/density/soma is a sequence of (lamina, factor); depth
    scales the cortical thickness."""
    t, d, s = (np.array(v, float) for v in (base.thickness, base.density, base.soma_um))
    for arr, changes in ((t, thickness), (d, density), (s, soma)):
        for lamina, factor in changes:
            arr[LAMINAE.index(lamina)] *= factor
    return replace(base, thickness=tuple(t / t.sum()), density=tuple(d), soma_um=tuple(s),
                   thickness_mm=base.thickness_mm * depth, **kw)


# Allocortex and nuclei: not six layers; the laminae slots hold their own strata (unused slots 0).
#                       mol.  -     pyr.  -     -     -     oriens
CORNU_AMMONIS = _sig((0.45, 0.0, 0.20, 0.0, 0.0, 0.0, 0.35), (3, 0, 50, 0, 0, 0, 8), (7, 0, 24, 0, 0, 0, 12),
                     thickness_mm=1.6)
DENTATE = _sig((0.45, 0.0, 0.20, 0.0, 0.0, 0.0, 0.35), (3, 0, 300, 0, 0, 0, 15), (7, 0, 9, 0, 0, 0, 16),
               thickness_mm=1.2)
SUBICULUM = _sig((0.35, 0.0, 0.45, 0.0, 0.0, 0.0, 0.20), (3, 0, 50, 0, 0, 0, 10), (7, 0, 20, 0, 0, 0, 12),
                 thickness_mm=2.0)
ENTORHINAL = _sig((0.12, 0.10, 0.28, 0.06, 0.14, 0.10, 0.20), (4, 70, 30, 2, 28, 22, 24), (7, 22, 16, 6, 18, 16, 13),
                  islands=1.0, thickness_mm=3.0)  # II: islands of large stellate cells; IV: lamina dissecans
# nuclei have no laminae and no pial surface: drawn as a uniform cell field as deep as the grey matter is
NUCLEUS = _sig((0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0), (0, 0, 35, 0, 0, 0, 0), (0, 0, 16, 0, 0, 0, 0), thickness_mm=8.0)


def _nucleus(density_k: float, soma: float, islands: float = 0.0) -> Signature:
    return _vary(NUCLEUS, density=[("III", density_k / 35)], soma=[("III", soma / 16)], islands=islands)


# One entry per area family member of the Juelich maps (names without hemisphere). Comments say what
# separates it from its neighbours in the mapping study.
SIGNATURES: dict[str, Signature] = {
    # primary motor and premotor: agranular
    "Primary_motor_cortex_BA4a": _vary(AGRANULAR, density=[("Vb", 0.7)], soma=[("Vb", 2.6)], depth=1.1),  # Betz cells in Vb
    "Primary_motor_cortex_BA4p": _vary(AGRANULAR, thickness=[("III", 0.9), ("Vb", 0.8)], density=[("Vb", 0.85)],
                                       soma=[("Vb", 1.9)], depth=0.9),  # thinner, fewer and smaller Betz cells
    "Premotor_cortex_BA6": _vary(AGRANULAR, thickness=[("III", 1.1)], soma=[("III", 1.15), ("Vb", 1.1)]),  # no Betz
    # primary somatosensory: 3a transitional, 3b koniocortex, 1 and 2 increasingly parietal
    "Primary_somatosensory_cortex_BA3a": _vary(FRONTAL, thickness=[("IV", 0.8)], soma=[("Vb", 1.4)], depth=0.8),
    "Primary_somatosensory_cortex_BA3b": KONIO,
    "Primary_somatosensory_cortex_BA1": _vary(KONIO, thickness=[("III", 1.35), ("IV", 0.7)],
                                              density=[("IV", 0.7), ("II", 0.8)], soma=[("III", 1.25)], depth=1.1),
    "Primary_somatosensory_cortex_BA2": _vary(PARIETAL, thickness=[("III", 1.1)], soma=[("III", 1.25)], depth=0.95),
    # parietal operculum
    "Secondary_somatosensory_cortex_/_Parietal_operculum_OP1": _vary(PARIETAL, thickness=[("IV", 1.3)],
                                                                     density=[("IV", 1.2)]),
    "Secondary_somatosensory_cortex_/_Parietal_operculum_OP2": _vary(PARIETAL, thickness=[("IV", 0.6)],
                                                                     density=[("III", 0.8), ("IV", 0.7)]),
    "Secondary_somatosensory_cortex_/_Parietal_operculum_OP3": _vary(PARIETAL, thickness=[("II", 1.4)],
                                                                     density=[("II", 1.3)], soma=[("III", 0.85)]),
    "Secondary_somatosensory_cortex_/_Parietal_operculum_OP4": _vary(FRONTAL, soma=[("III", 1.2), ("Vb", 1.2)]),
    # primary auditory: TE1.0 koniocortex, TE1.1 (posteromedial) and TE1.2 (anterolateral) less granular
    "Primary_auditory_cortex_TE1.0": _vary(KONIO, thickness=[("III", 1.1)], depth=1.1),
    "Primary_auditory_cortex_TE1.1": _vary(KONIO, thickness=[("IV", 0.7), ("Va", 1.3)], density=[("IV", 0.75)],
                                           soma=[("Va", 1.25)]),
    "Primary_auditory_cortex_TE1.2": _vary(KONIO, thickness=[("III", 1.3), ("IV", 0.75)], density=[("IV", 0.8)],
                                           soma=[("III", 1.2)]),
    # insula: dysgranular Id1, granular Ig1 and Ig2
    "Insula_Id1": _vary(FRONTAL, thickness=[("IV", 0.6), ("VI", 1.2)], depth=1.05),
    "Insula_Ig1": _vary(PARIETAL, thickness=[("IV", 0.8)], density=[("II", 0.8)]),
    "Insula_Ig2": _vary(PARIETAL, thickness=[("II", 1.3), ("IV", 1.2)], density=[("IV", 1.15)]),
    # Broca's region: 44 dysgranular with large deep-III pyramids, 45 granular
    "Broca's_area_BA44": _vary(FRONTAL, thickness=[("IV", 0.7)], soma=[("III", 1.3)]),
    "Broca's_area_BA45": _vary(PARIETAL, soma=[("III", 1.2)]),
    # inferior parietal lobule (Caspers 2006)
    "Inferior_parietal_lobule_PF": _vary(PARIETAL, thickness=[("IV", 0.8)], soma=[("III", 1.3)]),
    "Inferior_parietal_lobule_PFt": _vary(PARIETAL, thickness=[("IV", 0.7), ("III", 1.1)], soma=[("III", 1.4)]),
    "Inferior_parietal_lobule_PFop": _vary(POLAR, thickness=[("IV", 0.7)], density=[("II", 0.7), ("III", 0.8)]),
    "Inferior_parietal_lobule_PFcm": _vary(FRONTAL, thickness=[("III", 0.9)], soma=[("III", 0.9)]),
    "Inferior_parietal_lobule_PFm": _vary(PARIETAL, thickness=[("III", 1.15)], soma=[("III", 1.15)]),
    "Inferior_parietal_lobule_Pga": _vary(PARIETAL, thickness=[("IV", 1.15)], soma=[("III", 1.2)]),
    "Inferior_parietal_lobule_PGp": _vary(POLAR, thickness=[("IV", 1.1)], soma=[("III", 1.15)]),
    # superior parietal lobule (Scheperjans 2008): 5 with giant pyramids in Vb, 7 granular
    "Superior_parietal_lobule_5Ci": _vary(FRONTAL, thickness=[("IV", 0.6)], soma=[("Vb", 1.8)], density=[("Vb", 0.8)]),
    "Superior_parietal_lobule_5L": _vary(FRONTAL, soma=[("Vb", 2.0)], density=[("Vb", 0.75)]),
    "Superior_parietal_lobule_5M": _vary(FRONTAL, thickness=[("IV", 0.8)], soma=[("Vb", 1.7), ("III", 1.1)]),
    "Superior_parietal_lobule_7A": PARIETAL,
    "Superior_parietal_lobule_7M": _vary(PARIETAL, thickness=[("II", 1.2)], density=[("III", 1.15)]),
    "Superior_parietal_lobule_7PC": _vary(FRONTAL, soma=[("III", 1.15)]),
    "Superior_parietal_lobule_7P": _vary(POLAR, thickness=[("III", 0.95)]),
    "Anterior_intra-parietal_sulcus_hIP1": _vary(PARIETAL, thickness=[("III", 0.9), ("IV", 1.2)], soma=[("III", 0.9)]),
    "Anterior_intra-parietal_sulcus_hIP2": _vary(PARIETAL, thickness=[("IV", 1.1)], soma=[("III", 1.1)]),
    "Anterior_intra-parietal_sulcus_hIP3": _vary(PARIETAL, thickness=[("III", 1.15)], soma=[("III", 1.2), ("Va", 1.1)]),
    # visual: V1 with the cell-sparse stria of Gennari (IVb) in a thick IV; V2 dense small cells in III
    "Visual_cortex_V1_BA17": _vary(KONIO, thickness=[("IV", 1.5), ("III", 0.8)], density=[("IV", 1.2)],
                                   band=(0.37, 0.43, 0.25, 1.0)),
    "Visual_cortex_V2_BA18": _vary(POLAR, density=[("III", 1.25)], soma=[("III", 0.9)]),
    "Visual_cortex_V3V": _vary(POLAR, thickness=[("IV", 0.85)]),
    "Visual_cortex_V4": _vary(PARIETAL, thickness=[("IV", 1.1)], density=[("III", 1.1)]),
    "Visual_cortex_V5": _vary(PARIETAL, soma=[("Vb", 1.3), ("III", 1.1)]),
    # hippocampal formation (allocortex) and amygdala (nuclei)
    "Hippocampus_cornu_ammonis": CORNU_AMMONIS,
    "Hippocampus_dentate_gyrus": DENTATE,
    "Hippocampus_subiculum": SUBICULUM,
    "Hippocampus_entorhinal_cortex": ENTORHINAL,
    "Hippocampus_hippocampal-amygdaloid_transition_area": _vary(SUBICULUM, density=[("III", 0.8)],
                                                                  soma=[("III", 0.8)], islands=0.4),
    "Amygdala_centromedial_group": _nucleus(22, 18),
    "Amygdala_laterobasal_group": _nucleus(40, 15),
    "Amygdala_superficial_group": _nucleus(55, 11, islands=0.3),
    # thalamic and hypothalamic nuclei inside the atlas
    "Lateral_geniculate_body": _nucleus(60, 14, islands=0.6),  # magno- and parvocellular sheets
    "Medial_geniculate_body": _nucleus(45, 13),
    "Mamillary_body": _nucleus(50, 12),
}

# Cortex outside every mapped area: homotypical parietal-type isocortex.
UNMAPPED = PARIETAL


def family(name: str) -> str:
    """The family of an area: its name without the last token (`Primary_motor_cortex_BA4a` -> `Primary_motor_cortex`)."""
    parts = name.rsplit("_", 1)
    return parts[0] if len(parts) == 2 else name


def signature(name: str) -> Signature:
    """The signature of an area by its atlas name (hemisphere excluded); a clear error for an unknown area."""
    try:
        return SIGNATURES[name]
    except KeyError:
        raise KeyError(f"no laminar signature for area {name!r}: add one to cytolake.synth.cytoarchitecture") from None


def brain_signature(sig: Signature, rng: np.random.Generator, soma_factor: float) -> Signature:
    """One brain's version of a signature: layer widths and densities varied per lamina, cortical thickness
    per area (see the module doc)."""
    t = np.asarray(sig.thickness) * np.exp(rng.normal(0.0, 0.10, len(LAMINAE)))
    d = np.asarray(sig.density) * np.exp(rng.normal(0.0, 0.10, len(LAMINAE)))
    return replace(sig, thickness=tuple(t / t.sum()), density=tuple(d),
                   soma_um=tuple(np.asarray(sig.soma_um) * soma_factor),
                   thickness_mm=sig.thickness_mm * float(np.exp(rng.normal(0.0, 0.08))))


def brain_signatures(names: list[str], rng: np.random.Generator) -> list[Signature]:
    """Index 0: unmapped cortex; then one per area name, varied for one brain."""
    soma_factor = float(np.exp(rng.normal(0.0, 0.05)))
    return [brain_signature(s, rng, soma_factor) for s in [UNMAPPED] + [signature(n) for n in names]]

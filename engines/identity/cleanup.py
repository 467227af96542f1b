"""Cleaning an enrollment photo's face texture: what is not the person's skin, and what is the photo's, goes.

A photo's unwrapped face carries more than the person: a microphone or a hand in front of the chin, hair
or background at the sides where the mesh's outline runs past the face, hair over the forehead, the
flash's specular highlights, the photo's grain. Each would be painted onto every frame of the actor,
following the mesh — a grey blob on a chin, a shiny spot that stays whatever the stage light, grain that
shimmers as the face moves. Here, per photo and before the photos are merged
(``engines.identity.enroll.build_texture``):

- **occluders**: what is not skin and reaches in from the face's outline. Skin is judged against the
  photo's own cheeks: along the sides above the cheekbones, darker or of another hue (hair, background);
  below them only another hue or much less colour (a microphone, a sleeve) — a beard is darker but of the
  skin's hue, and stays; from the temples down to the jaw, paler and greyer (white or grey hair, a bright
  background the outline runs over: ``PALE_REACH_X``), with the somewhat paler strands it thins out into, the
  streaks of it a few texels in and its part over a brow's outer end.
  Eyes and lips are never taken, nor brows but under a fringe. Hair hanging over the forehead from the top
  (a fringe: hair, not a shadow, over the forehead's middle) is taken (``CleanupConfig.fringe``, see there), with
  everything above its lower edge and the brows it comes down to. Occluded texels are filled in the de-lit
  domain — from the mirrored texel on the other side of the face where that is clean skin, else from a
  smooth continuation of the skin around them (push-pull) — and relit with the photo's own shading;
- **cavities and cast shadows** (``cavities``): the light model divides out the photo's broad shading but
  has no terms for what the face's own relief hides from the light — the shadow under the nose, deep
  smile folds, the eye sockets' shadow. Left in, they are painted as albedo onto every frame: a photo
  taken from slightly below stretches its nostrils' shadow into a dark "moustache" over the actor's upper
  lip. Between the nose's base and the lip the skin is brought to the skin around it both ways (the
  light model's overshoot there is a pale patch), and relit with no more of the photo's shadow than the
  identity's de-lighting takes out again; in the folds beside the nose and mouth and in the sockets skin
  darker than the clean skin around it is lifted toward it but for ``fold_keep`` (a fold is partly the
  person's). The nostrils themselves stay (a face is known by them: lifting them cost the recogniser's
  likeness 0.1). Off by default (``CleanupConfig.cavities``: it costs likeness);
- **the nose's base** (``nose_shadows``): the photo's nostrils, the shadow under its nose and on the lip below it,
  as dark as the identity's de-lighting leaves them (it divides the photo's light out only within ``SHADING_RANGE``
  there), keep half of their broad darkness against the skin around (the nostrils' fine shapes stay) and none below
  a floor, filled toward that skin's colour. Drawn whole on an actor, a photo lit from above put a dark band
  under every frame's nose, where the actor's nostrils are small dark dots (biden.jpg on d10.mp4: that region's
  darkest tenth 14 L*a*b* units darker than the actress's); the swap's relief then takes part of the actor's own
  shading there (``engines.compose.relief``). A photo lit from above has that shadow (its light model shades the
  nose's underside: ``NOSE_UNDERSIDE_SHADE``); a flash-lit photo's nostrils are lifted half as much
  (``nose_shadows_unlit``), and so are those of a photo taken from below the face whatever its light
  (``nose_shadows_below_deg``: there the darkness is the nostrils seen open). A moustache is
  hair, not shadow: a photo whose skin under the nose carries much more fine detail than its cheeks
  (``MOUSTACHE_DETAIL``) is left as it is;
- **the nose's light** (``nose_shading``, ``nose_highlight``): across the nose's ridge and sidewalls, the photo's broad
  highlight over the skin around is taken out and half of its shadow beyond a soft relief's; a side light's dark
  sidewall and a flash's white ridge were drawn on every frame whatever the stage light (s1.jpg on d10.mp4 and
  Obama_speaking.mp4). A nose is about symmetric: half of what one sidewall has darker than the other beyond the
  tolerance, the side light's, is taken out first (``nose_side_light``; s1.jpg on s18.mp4 and d0.mp4);
- **the cheeks' cast shadows** (``cheek_shadows``): under a light that casts shadows (the same test), the brows, the
  nose and the cheekbones shade the hollows below them — under the eyes, beside the nose, the folds — which a smooth
  light model has no terms for; de-lit, that broad darkness stays as albedo, a bruise down a flatly lit actor's cheek
  (biden.jpg, his face turned, on d0.mp4). Half of what is darker than ``CHEEK_SHADOW_TOLERANCE`` of the clean skin
  around is taken out, to no less than ``cheek_shadow_floor`` of it, by a smooth gain: wrinkles and the fold's line
  stay, and the actor's own shading comes from the relight;
- **eye make-up** (``eye_rings``): under a light that casts no shadows (the same test, the other way), the broad
  darkness of the lower lids and of the skin below and beside the eyes that both eyes share beyond
  ``EYE_RING_TOLERANCE`` of the clean skin around — kohl on and smudged under the lower lashes, dark circles:
  cosmetic, not who the person is — is taken out by a smooth gain; the lash line, the openings, the upper lids (and
  any eye shadow on them) and the brows stay. Drawn on an actor without make-up it was a dark ring round the eyes
  (s1.jpg on Obama_speaking.mp4);
- **the skin round the mouth, paler than the cheeks** (``mouth_skin_pale``, ``pale_cheeks``): a flash lights the
  mouth's and chin's forward-facing skin, which the light model shades as turned down and divides by too little light;
  on a photo whose skin round the mouth is paler than its cheeks as a whole (``MOUTH_SKIN_PALE``), half of its broad
  paleness there and on the cheeks beyond ``MOUTH_SKIN_PALER`` of the cheeks' level is taken out by a grey gain (it
  was a pale, flat patch round every actor's mouth and a pale pink disc on one cheek: s1.jpg on s18.mp4 and d0.mp4);
- **a smile's creases** (``smile_folds``, by how broadly the photo smiles: ``smile_amount``): the creases of its
  folds beside the nose and mouth are lifted to the skin a few texels around them. Left in, every frame of the
  actor showed the grin's "parentheses" around a closed, still mouth (obama.jpg and roop_source.jpg on a
  close-up of d13.mp4). Only the creases: the folds' broad shading is part of how a recogniser knows the face,
  and the dark pockets at the mouth's corners help the mouth's opening read as the actor's (``_relax_smile``);
- **a closed mouth's corners** (``mouth_corners``): a neutral photo with closed lips has its corners' shadow
  stretched over the whole width of the mouth's opening in the texture; their dark pockets are lifted halfway to
  the skin and lips around them (a grey-brown smudge beside every frame's mouth, biden.jpg on d10.mp4);
- **the skin's broad colour** (``skin_colour``): where it departs from the face's own skin colour by more than a
  few units — a blush, a chin tinted by a bounce from the clothes — its colour (not its lightness) is brought back
  to it: painted, a made-up photo's blush is two red discs on every actor. The skin in the band around the lips
  (the mesh's triangles touching their contour) is evened too, its lipstick-coloured texels left
  (``skin_beside_lips``);
- **teeth** (``teeth``): a smile's teeth are not the identity's face. The mouth opening and any texel of
  the lips that is much paler and greyer than the lips (teeth the mesh's lip contour cut through) take the
  lips' colour, so the lips' inner rim stays lip-coloured however far the actor opens the mouth;
- **specular highlights**: skin brighter than its neighbourhood by more than ``highlight_ratio`` after the
  photo's light is divided out is pulled down to that level (filling near-white highlights from the skin
  around, with their halo, was tried: it cost s1.jpg's likeness 0.15 on d3.mp4, BENCHMARKS.md);
- **grain**: non-local means at a strength set by the noise measured on the photo's own skin.

The fringe, when taken, is reported apart (``Cleaned.fringe``): the enrollment leaves it out of the identity (its
coverage drops there, ``CleanupConfig.fringe_left_out``), so the actor's own forehead — or the actor's own
fringe — shows there instead of a painted one: a photo's fringe painted onto an actor with other hair
floats on the forehead as a patch of hair (s1.jpg on Obama_speaking.mp4 and d3.mp4).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from engines.face.topology import (
    EYE_OPENING,
    FEATURE,
    LEFT_BROW,
    LIPS,
    MOUTH_OPENING,
    RIGHT_BROW,
    SKIN,
    face_topology,
    mirror_vertices,
)
from engines.light.sh import linear_to_srgb, srgb_to_linear
from engines.swap.texture import (
    NOSTRIL_ZONE,
    canonical_sides,
    fill_holes,
    shadow_zones,
    soft_zone,
    texture_canonical_x,
    texture_canonical_y,
    texture_labels,
    texture_raster,
)

SHADING_RANGE = (0.8, 1.25)
"""The identity's de-lighting (``engines.identity.store.Identity.albedo``) divides by the local detail of the
photo's shading (creases, under the nose: relative to its broad level) limited to this range (here: the
clean-up relights what it lifts with no more shadow than that takes out again)."""


@dataclass(frozen=True)
class CleanupConfig:
    occluders: bool = True
    """Find what is not skin reaching in from the face's outline (objects in front of the lower face; hair or
    background at the sides, with ``sides``) and fill it with skin."""
    sides: bool = True
    fringe: bool = True
    """Take hair hanging over the forehead from the top (a fringe) out of the identity: painted onto an actor
    with other hair it floats on the forehead as a patch; left out, the actor's own forehead, brows (or fringe)
    show there. What it costs: the face recogniser, which knows s1.jpg by her fringe, finds the output closer
    to the actor than to the photo on three clips of four (her cosine 0.45-0.64 -> 0.24-0.39); with everything
    from the brows up hidden from both crops it falls 0.03-0.07 and the output stays closer to her on every
    frame (BENCHMARKS.md, issue 21). A photo without a fringe (every other shared photo, d10.mp4's frames)
    enrolls to the same bytes either way. False: the photo's fringe is painted on the actor's forehead."""
    fringe_left_out: float = 1.0
    """With ``fringe``, how much of the fringe's area is left to the actor: 1, the actor's forehead shows
    there; 0, the identity's forehead, filled in from the skin around the fringe, is drawn there (measured:
    the same cosine within 0.03, and a smooth, paler forehead that is no one's skin)."""
    fringe_strands: float = 2.0
    """With ``fringe``: texels above the brows whose lightness varies from side to side this many times more than the
    cheeks' (hanging strands, ``_strand_energy``) are hair where they join the fringe found by its colour: lit blond
    strands can be as light and as warm as skin (s1.jpg's over her left brow: 2.5 times her cheeks at the median,
    her fringe as a whole 2.9). The shared photos' bare foreheads read 0.7-1.3 times their cheeks at the median and
    2.2-2.5 at the 90th percentile on the three with the least make-up (obama.jpg, biden.jpg, alex-lacamoire.png)."""
    fringe_chroma: float = 0.45
    """With ``fringe``: hair darker than the cheeks is told from shadowed skin by its chromaticity, its linear
    channels' log-ratios this far from the cheeks' (``_hair_like``): a shadow keeps the skin's (the shared photos'
    foreheads under a painted hat brim's shadow: 0.11-0.15 at the median, s18.mp4's side away from the light 0.34),
    hair does not (d10.mp4's black 0.95, s1.jpg's brown fringe 0.64), or by its strands."""
    fringe_middle: float = 0.5
    """With ``fringe``: the share of the forehead's middle above the brows (``FRINGE_MIDDLE_X``) that must be hair for
    a fringe to be taken: s1.jpg's 0.86 (0.81-0.85 grey, darkened, at a quarter of its size); every other shared
    photo, a painted hat brim's shadow and every 20th frame of d10.mp4 (hair beside the temples) 0 to 0.06."""
    highlights: bool = True
    """Pull specular highlights down to the surrounding skin's level."""
    denoise: bool = True
    """Remove the photo's grain (non-local means, strength from the skin's own noise)."""
    hair_darker: float = 25.0
    """L* (0-255 scale) below the cheeks' at which a forehead texel may be hair ..."""
    hair_tint: float = 14.0
    """... or a*b* distance from the cheeks' hue."""
    hair_lighter: float = 25.0
    """L* above the cheeks' at which a texel along the sides may be white or grey hair (or background) ...
    (``PALE_REACH_X``) ..."""
    hair_greyer: float = 0.6
    """... when its chroma is also under this share of the cheeks'."""
    object_chroma: float = 0.45
    object_hue_deg: float = 40.0
    """Below the mouth, colour less saturated than this share of the skin's, or of a hue this far from it,
    is an object (a microphone); a beard, dark but of the skin's hue, stays."""
    highlight_ratio: float = 1.2
    """De-lit brightness over the neighbourhood's at which skin starts to count as a highlight."""
    cavities: bool = False
    """Lift the photo's cavities and cast shadows (under the nose, folds, sockets) to the skin around them.
    Off by default: measured with a face recogniser the lifted face is less like its photo (s1.jpg on d3.mp4,
    roop_source.jpg on d10.mp4: 0.05-0.1 of mean cosine; BENCHMARKS.md, issue 21) — the shadows are part of
    how a recogniser (and a viewer) knows the face; on for a photo lit from below."""
    cavity_ratio: float = 0.9
    """De-lit brightness under this share of the clean skin around it counts as shadow ..."""
    fold_keep: float = 0.65
    """... of which this share stays in the folds and sockets (none under the nose): lifting more of them
    flattens the face a recogniser knows (keeping 0.35: mean cosine 0.35 against 0.41 at 0.65, s1.jpg on
    d3.mp4; BENCHMARKS.md)."""
    skin_colour: float = 1.0
    """How much of the skin's broad colour departing from the face's own skin colour by more than
    ``skin_colour_tolerance`` (a*b* units) is taken out — only the colour, the lightness stays: a photo's blush
    (s1.jpg: its cheeks 15 units redder than its skin) was drawn as two red discs on every actor, and a chin lit by
    a bounce from the clothes as a pale greenish one (the swap moves the face's colour as a whole to the actor's);
    0: the photo's colours as they are."""
    skin_colour_tolerance: float = 3.0
    """The skin's broad colour may depart this far (a*b*, OpenCV's 8-bit L*a*b* units) from its median untouched: a
    face's own cheeks are a few units redder than its forehead (1-5 on the shared photos without make-up). At 6,
    s1.jpg's flash-lit lower cheeks (paler and 5 units less red than her median) and the olive shadow beside her
    mouth stayed, drawn as teal and yellow patches on a pale actor's cheek (s18.mp4's close-up)."""
    skin_colour_detail: float = 0.5
    """How much of the skin's colour detail around its broad colour stays from the brows down (its lightness all
    stays): all of it, s1.jpg's blotchy flash-and-retouch colour was drawn as a mottle of pink, teal and yellow on
    the cheek; none of it cost biden.jpg's likeness 0.01-0.03 of cosine (half: 0.01-0.02; BENCHMARKS.md, issue
    21)."""
    teeth: bool = True
    """Give the mouth opening and teeth showing through the lips the lips' colour."""
    teeth_at_opening: bool = True
    """With ``teeth``: a tooth is a pale, grey part of the lips that joins the mouth opening (teeth show through it),
    and the lips' colour goes only on the lips and the opening. Else every pale, grey texel of the lips counts, grown
    by a few texels past them: the photo's skin at a lip corner the mesh's lip contour overshoots (s1.jpg's right
    corner, paler and greyer than her lipstick) was a "tooth", and the lips' colour was painted on the skin beside the
    corner, a lip-coloured notch beside every actor's mouth."""
    smile_folds: float = 1.0
    """How much of a smiling photo's fold creases is lifted to the skin around them, times
    the photo's smile (``clean_texture``'s ``smile``, ``engines.identity.expression.smile_amount``: 0 for a
    neutral photo, which is left as it was); 0: none (BENCHMARKS.md, issue 21, for what it costs in likeness)."""
    mouth_corners: float = 0.5
    """How much of the dark pockets at a *closed-lipped, neutral* photo's mouth corners (and the creases running down
    from them) is lifted to the skin and lips around them, times how little the photo smiles (1 - its smile) and how
    closed its lips are (``CLOSED_GAP``): the texture stretches a closed mouth's corners over the opening's whole
    width, and their shadow was drawn as a grey-brown smudge beside every frame's mouth (biden.jpg on d10.mp4).
    Half of it: all of it cost biden.jpg's likeness on Obama_speaking.mp4 0.03 of cosine (half: 0.01; on d10.mp4
    none), and lifted on a photo with parted lips (s1.jpg) 0.06 (BENCHMARKS.md, issue 21). A smiling photo's corners
    are left (``smile_folds``); 0: none."""
    nose_shadows: float = 0.5
    """How much of the broad darkness of the photo's nose base (its nostrils, the shadow under the nose and on the lip
    below it: ``engines.swap.texture.shadow_zones``), as the identity's de-lighting leaves it, against the clean skin
    around, is taken out (the nostrils' and creases' fine shapes stay: ``NOSE_SHADOW_SIGMA``) ...

    Half: the recogniser knows a face partly by its nostrils and the shading around them (filled whole with the
    cavities' lift they cost 0.08-0.1 of cosine; half of all the darkness, not only the broad, 0.02-0.03), and the
    swap's relief takes 0.6 of what is left toward the actor's shading. biden.jpg, lit from above, on d10.mp4: under
    the nose within the artifact bound on 0% -> 100% of the frames (BENCHMARKS.md, issue 21); 0: off. With
    ``cavities`` their lift, which takes the skin under the nose whole, is used instead."""
    nose_shadow_floor: float = 0.6
    """... and the least brightness any texel keeps there, as a share of that skin's, moved toward its colour (a deep
    nostril shadow of a photo lit from above is a black hole however broad its shadow is taken out; 0.5: d10.mp4 x
    biden.jpg within the bound on 93% of the frames, 0.6: 100%)."""
    nose_shadows_unlit: float = 0.5
    """How much of the nose base's lift (``nose_shadows``) a photo *not* lit from above gets (``NOSE_UNDERSIDE_SHADE``;
    one lit from above gets it all): a flash-lit photo's nostrils are dark cavities all the same, and drawn on an actor
    whose nostrils show less they were the face's worst region (s1.jpg on d10.mp4: under the nose's darkest tenth up
    to 10.5 L*a*b* units from the actress's, over the bound of 8; 6.8 with half the lift). Half: the recogniser knows
    s1.jpg partly by her nostrils (all of it cost 0.02-0.04 of cosine; half, about 0.01 from the brows down:
    BENCHMARKS.md, issue 21)."""
    nose_shadows_below_deg: float = 12.0
    """A photo taken from this far below the face or more (its head pitched up: ``engines.face.landmarks.head_pose``'s
    pitch, degrees; fully at ``NOSE_BELOW_FROM_DEG`` or less, a ramp between) gets the nose base's lift of a photo *not*
    lit from above (``nose_shadows_unlit``) even where its light is: seen from below, the nose's base shows its
    nostrils open and the shadow under it foreshortened, so its darkness there is the nostrils' cavities, as a flash's.
    roop_source.jpg (from 12 degrees below, its light from above) was lifted as biden.jpg (from 4 degrees above): the
    skin under its nose came out lighter than every clip's actor's there — by 6-10 L* at the median on d0.mp4, d3.mp4
    and d13.mp4, 1 on s18.mp4 (5-9 without any lift) — and its nostrils a pale ring where their rims kept their
    detail; d0.mp4 x roop_source.jpg's under the nose was the frame's worst region, at the clip's bound of 8
    (BENCHMARKS.md, issue 21). Inf: by the light alone."""
    nose_shading: float = 0.5
    """How much of the broad *shadow* across the photo's nose (its ridge and sidewalls below the eyes: ``NOSE_ZONE``),
    as the identity's de-lighting leaves it, is taken out where it is darker than the clean skin around the nose by
    more than ``nose_shading_tolerance`` (its fine detail and its colour stay: ``NOSE_SHADING_SIGMA``) ...

    A nose's skin is about as light as the cheeks beside it; what a photo shows across it beyond that is its light — a
    side light's shadow down one sidewall, a flash's highlight along the ridge — which the light model, smooth over the
    face, leaves in the albedo (``SHADING_RANGE``), so it was drawn on every frame whatever the stage's light: s1.jpg,
    lit from her left and by a flash, put a dark sidewall on d10.mp4's evenly lit actress (the nose's darkest tenth 10
    L*a*b* units darker than hers, the worst region of every frame) and a white ridge on Obama_speaking.mp4's (its
    brightest tenth 9 units brighter). The swap shades the identity's nose with the actor's light on its own normals,
    and the relief takes part of the actor's own shading there (``engines.compose.relief``). Half of a shadow: the
    recogniser knows a face by its nose's shading (all of it cost s1.jpg 0.03-0.09 of cosine from the brows down, half
    0.01-0.04; BENCHMARKS.md, issue 21); 0: off."""
    nose_highlight: float = 1.0
    """... and of its broad *brightness* over that skin (a highlight along the ridge): all of it (taken alone it cost no
    likeness, within 0.002 of cosine on d10.mp4, Obama_speaking.mp4 and s18.mp4 with s1.jpg); 0: off."""
    nose_side_light: float = 0.5
    """How much of the broad shadow down *one* of the nose's sidewalls beyond the other's (the lighter sidewall at the
    mirrored place, where the photo saw it) and ``nose_shading_tolerance`` is taken out, before ``nose_shading`` judges
    what is left ...

    A nose is about symmetric: what one sidewall has darker than the other is the photo's light from the side, not the
    nose's shape, and the light model, smooth over the face, leaves it in the albedo (``nose_shading`` took half of it
    beyond the tolerance, as of a shadow both sidewalls share). s1.jpg, lit from her left: her right sidewall's broad
    lightness at its median 0.45 of the skin around (the left one's 1.0), drawn with ``nose_shading`` alone at 0.63 as a
    dark stripe down every actor's nose beside a lit ridge — under s18.mp4's actress's own highlight on that side (the
    nose's brightest tenth 7.4 L*a*b* units darker than hers at the median, over the clip's bound of 8 on 3 of 30
    frames) and on d0.mp4's evenly lit actor (its darkest tenth 7.1 darker, the worst region of 19 of 30 frames); with
    half of the one-sided part 0.75: s18.mp4 within on every frame, d0.mp4's nose no frame's worst. Half: the
    recogniser knows s1.jpg by her photo's side-lit nose — all of it cost her 0.008-0.023 of cosine on four clips
    (from the brows down 0.007-0.024), half 0.004-0.014 (0.002-0.016), for the same frames within (BENCHMARKS.md,
    issue 21). The shared photos' sidewalls differ by up to about the tolerance (obama.jpg, biden.jpg, roop_source.jpg
    within a few texels; woman.png, t1.jpg and lin-manuel-miranda.png, lit from a side, more). 0: off."""
    nose_shading_tolerance: float = 0.12
    """The nose's broad lightness may depart this far from the skin around it untouched (in log: about 13% of its
    level): a nose's own relief under a soft light. The shared photos' noses, from the brows down, lie within about this
    but for s1.jpg's (its shadowed sidewall at 0.23 of the cheeks beside it, its ridge at 1.23, both at the 5th / 95th
    percentile; roop_source.jpg 0.79-1.05, t1.jpg 0.88-1.10)."""
    cheek_shadows: float = 0.5
    """How much of the broad darkness of the photo's cheeks, under its lower lids and in its folds beside the nose
    (``cheek_shadow_zone``), beyond ``CHEEK_SHADOW_TOLERANCE`` of the clean skin around, is taken out; the fine detail
    (wrinkles, the fold's line: ``CHEEK_SHADOW_SIGMA``) stays ...

    Only for a photo whose light casts shadows (its light model shades the nose's underside: ``_lit_from_above``): the
    brows, the nose and the cheekbones then shade the hollows below them, which a smooth light model has no terms for,
    and de-lit they stay as albedo. biden.jpg (lit from above, his face turned): the skin under his left eye and down
    beside his nose half as bright as his cheeks' median, drawn on d0.mp4's flatly lit actor as a bruise down the left
    cheek (its darkest tenth 8 L*a*b* units under the actor's, the clip's bound 8; BENCHMARKS.md, issue 21). A
    flash-lit photo's dark rings and folds are the person's, and stay; 0: off."""
    cheek_shadow_floor: float = 0.7
    """... and the least broad brightness left there, as a share of that skin's."""
    eye_rings: float = 1.0
    """How much of the broad darkness below and beside the photo's eyes (``eye_ring_zone``: the skin around them and the
    lower lids, not the lash line, the upper lids or the brows) beyond ``EYE_RING_TOLERANCE`` of the clean skin around,
    as far as both eyes share it, is taken out by a smooth gain: the lashes, the lids' and creases' fine lines and the
    colour stay ...

    Only for a photo whose light casts no shadows (a flash, a frontal light: not ``_lit_from_above``), and only what
    both eyes share (a light from the side, a fringe's shadow, darkens one socket more: the lighter side's darkness is
    the skin's): what darkens the sockets then is on the skin — eye make-up (kohl on and smudged under the lower
    lashes) or dark circles — cosmetic, not who the person is, and drawn on an actor without it a dark ring that reads
    as a bruise on a close look. s1.jpg's kohl-lined lower lids and the smudge under them: the morph gives the actor
    her eye shape, 0.06 eye-corner distances lower than Obama's, and the ring under Obama_speaking.mp4's eyes was hers,
    its median 7.6 L*a*b* units darker than his, over the clip's bound of 8 on a third of the frames; now within on
    every frame (p99 9.1 -> 7.7), her likeness within 0.01 of cosine on six clips (from the brows down -0.03 to +0.01;
    BENCHMARKS.md, issue 21). All of it beyond the tolerance: half or three quarters of it (before the both-eyes
    rule) left that ring over the bound on 3% of the frames, and cost most of what all of it costs. A photo lit from
    above is left as it is: its sockets' darkness is its light's, taken out by ``cheek_shadows`` and exchanged for the
    actor's by the swap (``engines.compose.relief.ReliefConfig.sockets``). 0: off."""
    mouth_skin_pale: float = 0.5
    """How much of the broad *paleness* of the skin round the mouth (``mouth_skin_zone``: under the nose, the upper
    lip, beside and below the lips down the chin; the lips' skin-coloured rim too, ``skin_beside_lips``) beyond
    ``MOUTH_SKIN_PALER`` times the cheeks' median is taken out, as the swap draws it (a grey gain: its fine detail and
    its colour stay), on a photo whose skin there is paler than its cheeks as a whole (``MOUTH_SKIN_PALE``) ...

    Skin round the mouth is not paler than the cheeks (the shared photos' de-lit skin there reads 0.7-1.0 times their
    cheeks at the median, a man's shaven upper lip darker). A flash lights the mouth's and the chin's forward-facing
    skin that the photo's light model, smooth over the face and shading the mesh's downturned normals there, gives
    less light: divided by too little, that skin stays pale as albedo, drawn as a pale, flat, greenish patch round every
    actor's mouth (s1.jpg: her upper lip 1.4 times her cheeks; on s18.mp4 the upper lip's brightest tenth 9 L*a*b*
    units over the actress's, the clip's bound 8, on every frame; on d0.mp4 over an actor whose upper lip is darker
    than his cheeks). Half: the recogniser knows s1.jpg partly by her photo's pale lower face — all of it (with all of
    ``pale_cheeks``) cost her cosine 0.05 on s18.mp4 and 0.03-0.04 on d0.mp4 and Obama_speaking.mp4 (from the brows
    down 0.04-0.06), half of both 0.00-0.02 (0.00-0.02), and s18.mp4 x s1.jpg is within the artifact bound on every
    frame either way (BENCHMARKS.md, issue 21). 0: off."""
    pale_cheeks: float = 0.5
    """... and of the cheeks' (``cheek_shadow_zone``) on such a photo: its flash's broad shine on a cheek's apple,
    de-lit the same way, was drawn as a pale pink disc on one cheek (s1.jpg's right cheek, with what the colour evening
    leaves of her blush: its brightest tenth 8 L*a*b* units over d0.mp4's actor's, with the mouth's skin dimmed the
    worst region of most frames). 0: off."""


FOREHEAD_TOP_Y = -0.9
"""Canonical height (eye-corner distances, y down) of the top of the forehead: hair reaches in from here."""
ABOVE_BROWS_Y = -0.6
"""Hair is looked for above this height (the brows themselves are a feature and always kept)."""
BROWS_TOP_Y = -0.5
"""A fringe is looked for down to here (the brows' lower edge)."""
TEMPLE_X = 0.5
TEMPLE_LOW_Y = -0.3
"""Beside the eyes (beyond their outer corners, at 0.5) a fringe swept to a temple is looked for down to
this height (the eyes' lower lids)."""
SIDE_X = 0.62
"""Hair along the sides is looked for this far from the face's middle (the outer eye corners are at 0.5)."""
PALE_REACH_X = 0.45
PALE_LOW_Y = 0.55
"""White or grey hair (or a bright background) reaching in from the sides is looked for further in and
lower down than dark hair: in to this distance from the face's middle and down to this height (the jaw).
Paler and greyer than the cheeks is neither skin (a blush is more colourful, a beard darker) nor a shadow;
cut at ``SIDE_X`` and ``SIDE_HAIR_Y`` the rest of biden.jpg's white hair at his left temple and jaw stayed
beside a straight vertical seam where the fill began, and was drawn as a white streak down that side."""
PALE_STRAND_X = 0.35
"""The strands that white hair found from the sides thins out into are followed in to this distance from the face's
middle (its core is looked for beyond ``PALE_REACH_X``)."""
PALE_GAP = 32
"""... and so are streaks of it up to 1/PALE_GAP of the texture's side of skin in from them."""
SIDE_HAIR_Y = 0.35
"""Down to this height (the mouth), hair hanging along the sides of the face is looked for by darkness
or hue; lower down (and anywhere else on the outline below ``LOWER_Y``) only by hue (a beard stays)."""
LOWER_Y = -0.1


@dataclass(frozen=True)
class Cleaned:
    texture: np.ndarray
    """(T, T, 3) uint8 BGR."""
    occluded: np.ndarray
    """(T, T) float32 0..1: how much of each texel was filled in (hair, objects)."""
    fringe: np.ndarray | None = None
    """(T, T) float32 0..1: the part of ``occluded`` that is a fringe over the forehead (None: not looked
    for); the enrollment leaves it out of the identity."""


def clean_texture(
    texture: np.ndarray,
    weight: np.ndarray,
    shading_bgr: np.ndarray | None,
    config: CleanupConfig | None = None,
    smile: float = 0.0,
    lips_gap: float = 1.0,
    pitch_deg: float = 0.0,
) -> Cleaned:
    """Clean one photo's unwrapped face (``engines.swap.texture.unwrap``): see the module docstring. ``smile``: how
    broadly the photo smiles, 0..1 (``engines.identity.expression.smile_amount`` of its frontalised mesh);
    ``lips_gap``: the gap between its inner lips there (eye-corner distances; the default: open); ``pitch_deg``: its
    head's pitch (``engines.face.landmarks.head_pose``; positive: seen from below).

    ``shading_bgr``: (T, T, 3) linear shading of the photo's light per texel, or None (then the texture's
    own smooth brightness stands in for it)."""
    cfg = config or CleanupConfig()
    size = texture.shape[0]
    labels = texture_labels(size)
    # Texels the photo saw well enough to clean; occluders are looked for on everything it saw at all (hair
    # at the far edge of a turned face is seen at a grazing angle, and shows when the actor turns).
    face = (labels >= 0) & (weight > 0.05)
    seen = (labels >= 0) & (weight > 0.005)
    lin = srgb_to_linear(texture.astype(np.float32) / 255.0).astype(np.float32)
    shade = _luma_shading(lin, face, shading_bgr)
    albedo = lin / shade[..., None]
    changed = face.copy()
    occluded = np.zeros((size, size), np.float32)
    fringe = None
    if cfg.denoise:
        albedo = _denoise(albedo, labels, face)
    if cfg.occluders:
        occluded, fringe = _occluders(texture, albedo, labels, seen, cfg)
        if occluded.max() > 0.0:
            albedo = _fill_from_skin(albedo, occluded, (labels == SKIN) & face & (occluded < 0.05) & (weight > 0.2))
            changed |= seen & (occluded > 0.0)
    if cfg.teeth:
        albedo, teeth = _close_mouth(albedo, labels, seen, cfg.teeth_at_opening)
        changed |= teeth
    if cfg.highlights:
        albedo = _flatten_highlights(albedo, labels, face, cfg.highlight_ratio)
    # Before the nose's and the cheeks' steps, which judge their zones against the skin around (dimmed here).
    if cfg.mouth_skin_pale > 0.0 or cfg.pale_cheeks > 0.0:
        albedo, dimmed = _dim_pale_mouth_skin(albedo, shade, labels, face, seen, cfg)
        changed |= dimmed
    if cfg.nose_shading > 0.0 or cfg.nose_highlight > 0.0:
        albedo, flattened = _flatten_nose_shading(albedo, shade, labels, face, seen, cfg)
        changed |= flattened
    if cfg.eye_rings > 0.0:
        # Before the skin colour's evening: lifted by a grey gain, a smudge of make-up keeps its tint, which the
        # evening then takes (lifted after it, s1.jpg's rings on d10.mp4 were 7.5 a*b* units yellower than the
        # actress's bluish ones at the median, the frame's worst region; 6.2 lifted before it). The evening's levels
        # move by a level or two over the face with it (its exposure and median colour are measured over it all).
        albedo, lifted = _lift_eye_rings(albedo, shade, labels, face, seen, cfg)
        changed |= lifted
    if cfg.skin_colour > 0.0:
        albedo, evened = _even_skin_colour(
            albedo, labels, face, weight, cfg.skin_colour, cfg.skin_colour_tolerance, cfg.skin_colour_detail
        )
        changed |= evened
    if cfg.smile_folds > 0.0 and smile > 0.0:
        albedo, relaxed = _relax_smile(albedo, labels, face, seen, min(smile, 1.0) * cfg.smile_folds)
        changed |= relaxed
    closed = float(np.clip((CLOSED_GAP[1] - lips_gap) / (CLOSED_GAP[1] - CLOSED_GAP[0]), 0.0, 1.0))
    corners = (1.0 - float(np.clip(smile, 0.0, 1.0))) * closed * cfg.mouth_corners
    if corners > 0.0:
        albedo, lifted = _lift_mouth_corners(albedo, labels, face, seen, corners)
        changed |= lifted
    if cfg.nose_shadows > 0.0 and not cfg.cavities:  # the cavities' lift takes the zone under the nose whole
        albedo, lifted = _lift_nose_base(texture, albedo, shade, labels, face, seen, cfg, pitch_deg)
        changed |= lifted
    if cfg.cheek_shadows > 0.0:
        albedo, lifted = _lift_cheek_shadows(albedo, shade, labels, face, seen, cfg)
        changed |= lifted
    if cfg.cavities:
        # On every texel the photo saw at all: a nostril is seen at a grazing angle (its rim is a shadow too).
        albedo, shade = _lift_cavities(albedo, shade, labels, face, seen, cfg)
        changed |= seen & (labels == SKIN)
    out = linear_to_srgb(np.clip(albedo * shade[..., None], 0.0, 1.0)) * 255.0
    cleaned = np.where(changed[..., None], np.round(out), texture.astype(np.float32))
    return Cleaned(np.clip(cleaned, 0, 255).astype(np.uint8), occluded, fringe)


_LUMA_BGR = np.array([0.0722, 0.7152, 0.2126], dtype=np.float32)


def _luma_shading(lin: np.ndarray, face: np.ndarray, shading_bgr: np.ndarray | None) -> np.ndarray:
    """(T, T) positive brightness of the photo's light per texel, about 1 on the face."""
    if shading_bgr is not None:
        luma = np.asarray(shading_bgr, np.float32) @ _LUMA_BGR
    else:
        w = face.astype(np.float32)
        sigma = lin.shape[0] / 16.0
        norm = np.maximum(cv2.GaussianBlur(w, (0, 0), sigma), 1e-3)
        luma = cv2.GaussianBlur((lin @ _LUMA_BGR) * w, (0, 0), sigma) / norm
    typical = float(np.median(luma[face])) if face.any() else 1.0
    return np.maximum(luma / max(typical, 1e-6), 0.05).astype(np.float32)


def _lab(albedo: np.ndarray, face: np.ndarray) -> np.ndarray:
    """L*a*b* (OpenCV 8-bit scale, float) of the de-lit texture, exposed so the cheeks sit at mid-grey."""
    level = float(np.median((albedo @ _LUMA_BGR)[face])) if face.any() else 1.0
    srgb = linear_to_srgb(np.clip(albedo * (0.35 / max(level, 1e-6)), 0.0, 1.0)).astype(np.float32)
    return cv2.cvtColor(srgb, cv2.COLOR_BGR2LAB) * np.array([255.0 / 100.0, 1.0, 1.0], np.float32) + np.array(
        [0.0, 128.0, 128.0], np.float32
    )


def _occluders(
    texture: np.ndarray, albedo: np.ndarray, labels: np.ndarray, face: np.ndarray, cfg: CleanupConfig
) -> tuple[np.ndarray, np.ndarray | None]:
    """(how occluded each texel is, 0..1; the fringe's part of it, or None when not looked for)."""
    size = albedo.shape[0]
    y = texture_canonical_y(size)
    keep = brow_mask(size) | (labels == LIPS) | (labels == EYE_OPENING) | (labels == MOUTH_OPENING)
    cheeks = face & (labels == SKIN) & (y > -0.3) & (y < 0.3)
    none = np.zeros((size, size), np.float32)
    if cheeks.sum() < 50:
        return none, (none if cfg.fringe else None)
    # Hair: darker than the cheeks or of another hue, on the photo's pixels (a forehead and the temples are
    # lit much like the cheeks; hair is much darker, or yellower or greyer). The brows are kept.
    raw = cv2.cvtColor(texture, cv2.COLOR_BGR2LAB).astype(np.float32)
    reference = np.median(raw[cheeks], axis=0)
    darker = reference[0] - raw[..., 0]
    tint = np.linalg.norm(raw[..., 1:] - reference[1:], axis=2)
    hairy = (darker > cfg.hair_darker) | (tint > cfg.hair_tint)
    raw_chroma = np.hypot(raw[..., 1] - 128.0, raw[..., 2] - 128.0)
    reference_chroma = float(np.hypot(*(reference[1:] - 128.0)))
    pale = (-darker > cfg.hair_lighter) & (raw_chroma < cfg.hair_greyer * reference_chroma)
    pale_ish = (-darker > 0.5 * cfg.hair_lighter) & (raw_chroma < (1.0 + cfg.hair_greyer) / 2.0 * reference_chroma)
    lab_ab = _lab(albedo, face)[..., 1:] - 128.0
    skin_ab = np.median(lab_ab[cheeks], axis=0)
    chroma, skin_chroma = np.linalg.norm(lab_ab, axis=2), float(np.linalg.norm(skin_ab))
    hue_cos = (lab_ab @ skin_ab) / np.maximum(chroma * skin_chroma, 1e-6)
    foreign = (chroma < cfg.object_chroma * skin_chroma) | (hue_cos < np.cos(np.radians(cfg.object_hue_deg)))
    # What reaches in from the face's outline: hair from the top of the forehead (only with ``fringe``); hair
    # or background along the sides down to the mouth; lower down only what is not of the skin's hue.
    edge = face & (cv2.dilate((~face).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    free = face & ~keep
    found_mask = np.zeros((size, size), bool)
    fringe_mask = np.zeros((size, size), bool)
    faded = np.zeros((size, size), np.float32)
    x = texture_canonical_x(size)
    if cfg.fringe:
        # Down to the brows' lower edge, and beside the eyes down to the eyes (hair swept to a temple).
        zone = (y < BROWS_TOP_Y) | ((np.abs(x) > TEMPLE_X) & (y < TEMPLE_LOW_Y))
        # A fringe's lit strands can be as light and as warm as skin (blond hair under a flash: s1.jpg's over her
        # left brow, left out, it stayed painted on the actor's forehead). Hair is told by its strands there: fine
        # lines dense over the whole patch, where skin is smooth but for a few creases. Only what joins the fringe
        # found by its colour is taken (a bare forehead's wrinkles have no fringe to join).
        energy = _strand_energy(raw[..., 0], face)
        strands = energy > cfg.fringe_strands * max(float(np.median(energy[cheeks])), 1.0)
        # Darker than the cheeks is not enough: a forehead's shadowed top (a bald head's, a hat brim's, the side
        # away from the light) is as dark, and of the skin's colour (``_hair_like``).
        hair_like = _hair_like(albedo, face, cheeks, strands, free & zone & (hairy | strands), cfg)
        hair = _connected(free & zone & hairy & hair_like, face & (y < FOREHEAD_TOP_Y))
        if hair.any():
            hair = _connected(free & zone & ((hairy & hair_like) | strands), hair)
        brows = brow_mask(size)
        # Brows the fringe reaches down to are under it (s1.jpg's are): the identity has none to give there.
        fringe_mask = _curtain(hair, y, face, brows) & zone & ~(keep & ~brows)
        # A fringe hangs over the forehead's middle; hair beside the temples alone (a middle parting, a receding
        # hairline) is not one: left out, every identity enrolled from d10.mp4's actress lost its forehead's sides.
        # Judged on the hair itself above the brows, not on the curtain: a raised brow's dark hairs outside the
        # brows' outline join the hair at the temples and hang a curtain over the middle (d10.mp4's frame 280).
        middle = face & (np.abs(x) < FRINGE_MIDDLE_X) & (y < ABOVE_BROWS_Y)
        share = float(np.mean(hair[middle])) if middle.any() else 0.0
        if share < cfg.fringe_middle:
            fringe_mask = np.zeros_like(fringe_mask)
        found_mask |= fringe_mask
    upper = (y >= ABOVE_BROWS_Y) & (y < SIDE_HAIR_Y) & (np.abs(x) > SIDE_X)
    if cfg.sides:
        found_mask |= _connected(free & upper & hairy, edge & upper)
        # White hair thins out into the skin: its paler-and-greyer core found, the strands around it that are
        # only somewhat paler and greyer go with it (left, they drew a white streak down its inner edge).
        sides = (y >= FOREHEAD_TOP_Y) & (y < PALE_LOW_Y) & (np.abs(x) > PALE_REACH_X)
        sides &= (y >= ABOVE_BROWS_Y) | (np.abs(x) > TEMPLE_X)
        core = _connected(free & sides & pale, edge & sides)
        # The strands reach further in than the core is looked for (left, biden.jpg's drew a pale line down the
        # jaw), and the white hair's part over a brow's outer end is hair
        # (kept as brow, it was a white spot at the temple): paler and greyer than the cheeks is no brow's colour.
        strands = (y >= FOREHEAD_TOP_Y) & (y < PALE_LOW_Y) & (np.abs(x) > PALE_STRAND_X)
        brows = brow_mask(size) & (labels >= 0)
        # A streak of it a few texels of skin in from the core is of the same hair (biden.jpg's down the jaw: left,
        # a pale line).
        near = cv2.dilate(core.astype(np.uint8), np.ones((2 * (size // PALE_GAP) + 1,) * 2, np.uint8)) > 0
        white = _connected((free & strands & (pale_ish | core | pale)) | (brows & sides & pale), near)
        found_mask |= white
        # It fades into the skin over a few texels: a rim around it is taken by how much paler than the cheeks it
        # still is (half-filled by the softened edge, biden.jpg's drew a pale line down the jaw).
        rim = cv2.dilate(white.astype(np.uint8), np.ones((2 * (size // 48) + 1,) * 2, np.uint8)) > 0
        fading = rim & free & strands & (raw_chroma < reference_chroma)
        paler = np.clip((-darker - 0.2 * cfg.hair_lighter) / (0.3 * cfg.hair_lighter), 0.0, 1.0)
        faded = np.where(fading, paler, 0.0).astype(np.float32)
    found_mask |= _connected(free & (y >= LOWER_Y) & foreign, edge & (y >= LOWER_Y))
    found = found_mask.astype(np.float32)
    if not found.any():
        return found, (none if cfg.fringe else None)

    def soften(mask: np.ndarray, sigma: float = size / 160.0) -> np.ndarray:
        grown = cv2.dilate(mask, np.ones((7, 7), np.uint8))
        soft = cv2.GaussianBlur(grown, (0, 0), sigma)
        return np.clip(np.maximum(soft, mask), 0.0, 1.0).astype(np.float32)

    occluded = np.maximum(soften(found), faded)
    if not cfg.fringe:
        return occluded, None
    # What the fringe leaves to the actor ramps out over a wider band than what is filled (``FRINGE_RAMP``): cut
    # within a few texels, the actor's brows stood over a line where the identity's lids began.
    return occluded, _ramp_out(fringe_mask, size * FRINGE_RAMP)


FRINGE_RAMP = 1 / 40
"""The share of the texture's side over which the identity gives way to the actor around a fringe left out (the
standard deviation of its soft edge): about the height of a brow."""


def _ramp_out(mask: np.ndarray, sigma: float) -> np.ndarray:
    """(T, T) float32: 1 on ``mask``, falling off outside it as a Gaussian of the distance from it (``sigma``
    texels), without a jump at its edge: a mask blurred and laid under itself jumped from 1 to about half at the
    edge, and the identity's face began under the actor's brows as a hard line however wide the blur."""
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    return np.exp(-0.5 * (outside / max(sigma, 1e-3)) ** 2).astype(np.float32)


STRAND_SIGMA = 1 / 128
"""Hair's strands are measured as the lightness gradient's magnitude averaged over this share of the texture's side
(a few strands wide)."""


def _strand_energy(lightness: np.ndarray, face: np.ndarray) -> np.ndarray:
    """(T, T) float32: the lightness gradient across the face (side to side) averaged around each texel over the
    face: a fringe's strands hang down, so they change the lightness from side to side; a forehead's wrinkles run
    across it and change it from top to bottom."""
    gx = cv2.Sobel(lightness, cv2.CV_32F, 1, 0)
    return _normalised_blur(np.abs(gx), face.astype(np.float32), lightness.shape[0] * STRAND_SIGMA)


FRINGE_MIDDLE_X = 0.25
"""The forehead's middle, where a fringe hangs (``CleanupConfig.fringe_middle``): this far either side of the face's
middle line (eye-corner distances; the inner brow ends are at about 0.2)."""
HAIR_SIGMA = 1 / 64
"""Hair is told from shadowed skin by the share of hair-like texels around each candidate texel (``_hair_like``)
over this share of the texture's side (a few strands' widths)."""


def _hair_like(
    albedo: np.ndarray,
    face: np.ndarray,
    cheeks: np.ndarray,
    strands: np.ndarray,
    candidate: np.ndarray,
    cfg: CleanupConfig,
) -> np.ndarray:
    """(T, T) bool: the texels of ``candidate`` (found darker or off-hued on the photo's pixels) in a neighbourhood
    where most are hair-like — hanging strands (``strands``), or a colour other than the skin's once the light's
    strength is out of it and darker than the cheeks (black, brown, dyed hair). A shadow keeps the skin's colour:
    its chromaticity (the linear channels' log-ratios) does not move when the light gets weaker, and it is smooth.
    Lighter than the cheeks and off-hued is an over-lit forehead (t1.jpg's), not hair, unless it has strands."""
    lab = _lab(albedo, face)
    darker = float(np.median(lab[..., 0][cheeks])) - lab[..., 0] > 0.5 * cfg.hair_darker
    eps = 1e-3
    chromaticity = np.log(np.maximum(albedo[..., [0, 2]], 0.0) + eps) - np.log(np.maximum(albedo[..., 1:2], 0.0) + eps)
    reference = np.median(chromaticity[cheeks], axis=0)
    off_hue = np.linalg.norm(chromaticity - reference, axis=2) > cfg.fringe_chroma
    evidence = (strands | (off_hue & darker)).astype(np.float32)
    share = _normalised_blur(evidence, candidate.astype(np.float32), albedo.shape[0] * HAIR_SIGMA)
    return candidate & (share > 0.5)


def _curtain(hair: np.ndarray, y: np.ndarray, face: np.ndarray, brows: np.ndarray) -> np.ndarray:
    """A fringe hangs from the top: everything of the face above the hair's lower edge, column by column
    (its edge smoothed, gaps between strands closed), is under it — strands of skin between strands of hair
    left in the identity would be painted as a comb of stripes. Where the hair comes down to a brow's upper
    edge (``brows``: never hair by themselves), the brow is under it too, down to its lower edge: painted, a
    fringe's strip over the brows reads as one heavy bar of a brow."""
    size = hair.shape[0]
    if not hair.any():
        return hair
    rows = np.arange(size, dtype=np.float32)[:, None]
    lowest = np.where(hair, rows, -1.0).max(axis=0)  # per column, the hair's lowest texel row (-1: none)
    brow_top = np.where(brows, rows, np.inf).min(axis=0)
    brow_bottom = np.where(brows, rows, -1.0).max(axis=0)
    touching = (lowest >= 0) & (lowest >= brow_top - max(2, size // 64))
    lowest = np.where(touching, np.maximum(lowest, brow_bottom), lowest)
    gap = max(3, size // 24) | 1
    lowest = cv2.dilate(lowest[None, :], np.ones((1, gap), np.uint8))[0]  # close gaps between strands
    covered = lowest >= 0
    smooth = cv2.GaussianBlur(np.where(covered, lowest, 0.0)[None, :].astype(np.float32), (0, 0), size / 96.0)[0]
    weight = cv2.GaussianBlur(covered[None, :].astype(np.float32), (0, 0), size / 96.0)[0]
    edge = np.where(covered, smooth / np.maximum(weight, 1e-3), -1.0)
    return face & (rows <= edge[None, :]) & (y < BROWS_TOP_Y)


def _connected(candidate: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The parts of ``candidate`` (after a small opening) that touch ``seed``."""
    opened = cv2.morphologyEx(candidate.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    count, components = cv2.connectedComponents(opened, connectivity=8)
    touching = np.unique(components[(opened > 0) & seed])
    return np.isin(components, touching[touching > 0])


def _fill_from_skin(albedo: np.ndarray, occluded: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Occluded texels take the mirrored texel where that is clean skin, else the surrounding skin's
    smooth continuation; blended by how occluded they are."""
    size = albedo.shape[0]
    around = fill_holes(albedo, source.astype(np.float32))
    mx, my = mirror_map(size)
    mirrored = cv2.remap(albedo, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mirror_ok = cv2.remap(source.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mirror_ok = np.clip((mirror_ok - 0.5) * 4.0, 0.0, 1.0) * (mx >= 0)
    # The mirrored skin keeps its detail but is brought to the level of the skin around the hole.
    level = cv2.GaussianBlur(mirrored, (0, 0), size / 64.0) + 1e-4
    mirrored = mirrored * (cv2.GaussianBlur(around, (0, 0), size / 64.0) / level)
    fill = around + mirror_ok[..., None] * (mirrored - around)
    return (albedo + occluded[..., None] * (fill - albedo)).astype(np.float32)


def _normalised_blur(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """``values`` (T, T) averaged over a Gaussian neighbourhood counting only where ``weight`` (0..1) is."""
    w = weight.astype(np.float32)
    blurred = cv2.GaussianBlur(values.astype(np.float32) * w, (0, 0), sigma)
    return blurred / np.maximum(cv2.GaussianBlur(w, (0, 0), sigma), 1e-3)


def _flatten_highlights(albedo: np.ndarray, labels: np.ndarray, face: np.ndarray, ratio: float) -> np.ndarray:
    """De-lit skin brighter than ``ratio`` times its neighbourhood's brightness is brought down to it (a soft
    ramp over the next 0.15, so the edge of a highlight does not show)."""
    size = albedo.shape[0]
    skin = face & ((labels == SKIN) | (labels == FEATURE))
    w = skin.astype(np.float32)
    luma = albedo @ _LUMA_BGR
    sigma = size / 48.0
    local = cv2.GaussianBlur(luma * w, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(w, (0, 0), sigma), 1e-3)
    excess = luma / np.maximum(local, 1e-4)
    strength = np.clip((excess - ratio) / 0.15, 0.0, 1.0) * w
    strength = cv2.GaussianBlur(strength, (0, 0), size / 256.0)
    target = np.minimum(excess, ratio)
    scale = (target / np.maximum(excess, 1e-4)) ** strength
    return (albedo * scale[..., None]).astype(np.float32)


def _lift_cavities(
    albedo: np.ndarray, shade: np.ndarray, labels: np.ndarray, face: np.ndarray, seen: np.ndarray, cfg: CleanupConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Skin darker than the clean skin around it, in the zones where a face's relief casts shadows
    (``engines.swap.texture.shadow_zones``), moved toward that skin: fully under the nose (there brighter
    skin too: the light model's overshoot), all but ``fold_keep`` in the folds and sockets.
    Colour and brightness both come from the skin around (a nostril's shadow is redder and darker than skin,
    not only darker). Returns the albedo and the photo's shading ``shade`` (T, T), raised under the nose
    toward the skin around's."""
    size = albedo.shape[0]
    skin = face & (labels == SKIN) & ~brow_mask(size)
    if skin.sum() < 100:
        return albedo, shade
    zones = shadow_zones(size)
    under, folds = zones.under_nose, np.maximum(zones.folds, zones.sockets)
    luma = albedo @ _LUMA_BGR
    sigma = size / 40.0  # about a nostril's width
    level = _normalised_blur(luma, skin, sigma)
    clean = skin & (luma > cfg.cavity_ratio * level)
    # The reference under the nose is the skin around the zone (nose, lip, cheeks beside): under a nose
    # lit from above the whole zone is in shadow, and a level measured inside it would call that skin.
    outside = clean & (under < 0.05)
    weights = (clean.astype(np.float32), outside.astype(np.float32))
    sigmas = (sigma, size / 28.0)
    levels = [_normalised_blur(luma, w, s) for w, s in zip(weights, sigmas, strict=True)]
    colours = [
        np.dstack([_normalised_blur(albedo[..., c], w, s) for c in range(3)])
        for w, s in zip(weights, sigmas, strict=True)
    ]
    level = levels[0] + under * (levels[1] - levels[0])
    colour = colours[0] + under[..., None] * (colours[1] - colours[0])
    ratio = luma / np.maximum(level, 1e-4)
    # How much of a shadow it is: nothing at the skin's own level, all of it from ``cavity_ratio`` down.
    # Under the nose both ways: the photo's light model, dividing its shading out where the nose shades the
    # lip, leaves over-bright patches beside the dark holes (a white "moustache" once relit).
    span = max(1.0 - cfg.cavity_ratio, 1e-3)
    depth = np.clip((1.0 - ratio) / span, 0.0, 1.0)
    depth = depth * depth * (3.0 - 2.0 * depth)
    either = np.clip(np.abs(1.0 - ratio) / span, 0.0, 1.0)
    either = either * either * (3.0 - 2.0 * either)
    strength = np.maximum(under * either, folds * (1.0 - cfg.fold_keep) * depth) * (seen & (labels == SKIN))
    strength = cv2.GaussianBlur(strength.astype(np.float32), (0, 0), size / 256.0)
    lifted = (albedo + strength[..., None] * (colour - albedo)).astype(np.float32)
    # Under the nose the skin is relit with no more of the photo's shadow there than the identity's own
    # de-lighting divides out again (``Identity.albedo``: at most ``SHADING_RANGE[0]`` under the light around):
    # relit with the whole shadow, the lifted albedo would come back as the same dark bar; with none of it,
    # as a pale one.
    around = _normalised_blur(shade, outside, size / 28.0)
    floor = np.maximum(shade, SHADING_RANGE[0] * around)
    shade = (shade + under * (seen & (labels == SKIN)) * (floor - shade)).astype(np.float32)
    return lifted, shade


def _lift_nose_base(
    texture: np.ndarray,
    albedo: np.ndarray,
    shade: np.ndarray,
    labels: np.ndarray,
    face: np.ndarray,
    seen: np.ndarray,
    cfg: CleanupConfig,
    pitch_deg: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The nose's base (``shadow_zones``' nostrils and under the nose): its broad darkness (``NOSE_SHADOW_SIGMA``)
    against the clean skin around the zone scaled to ``1 - cfg.nose_shadows`` of itself, its fine detail kept; then
    no texel left under ``cfg.nose_shadow_floor`` of that skin (moved toward the skin's colour). Judged on the albedo
    the identity will have (``_shading_detail``), so the lift is what the swap draws. All of it for a photo lit from
    above (``_lit_from_above``) unless seen from below (``pitch_deg``, ``cfg.nose_shadows_below_deg``),
    ``cfg.nose_shadows_unlit`` of it for another, nothing for one with a moustache (``_moustache``); (albedo, texels
    changed)."""
    size = albedo.shape[0]
    none = np.zeros((size, size), bool)
    skin = face & (labels == SKIN) & ~brow_mask(size)
    if skin.sum() < 100:
        return albedo, none
    zones = shadow_zones(size)
    zone = np.maximum(zones.nostrils, zones.under_nose)
    detail = _shading_detail(shade, face)
    lit = max(_lit_from_above(detail, skin & (zone > 0.5)) * _seen_from_above(pitch_deg, cfg), cfg.nose_shadows_unlit)
    amount = (1.0 - _moustache(texture, skin, zones.under_nose > 0.5)) * lit
    if amount <= 0.0:
        return albedo, none
    kept, stored, luma = _as_drawn(albedo, detail)
    # The reference is the skin around the zone (the nose, the cheeks beside it, the lip below): under a nose lit
    # from above the whole zone is in its shadow.
    sigma = size / 28.0
    level, clean = _clean_level(luma, skin & (zone < 0.05), sigma, 0.9)
    colour = np.dstack([_normalised_blur(stored[..., c], clean, sigma) for c in range(3)])
    where = (zone * amount * (seen & (labels == SKIN))).astype(np.float32)
    # The shadow is broad; the nostrils' and the creases' shapes within it are fine, and the person's (lifted with
    # the shadow, the likeness fell 0.02-0.03 of cosine on photos with no shadow to speak of: BENCHMARKS.md).
    broad = _normalised_blur(luma, face & ((labels == SKIN) | (labels == FEATURE)), size * NOSE_SHADOW_SIGMA)
    ratio = broad / np.maximum(level, 1e-4)
    gain = np.maximum((1.0 - (1.0 - ratio) * (1.0 - cfg.nose_shadows)) / np.maximum(ratio, 1e-4), 1.0)
    gain = np.power(gain, cv2.GaussianBlur(where, (0, 0), size / 256.0))
    stored = stored * gain[..., None]
    luma = stored @ _LUMA_BGR
    step = np.clip((cfg.nose_shadow_floor * level - luma) / np.maximum(colour @ _LUMA_BGR - luma, 1e-4), 0.0, 1.0)
    step = cv2.GaussianBlur((step * where).astype(np.float32), (0, 0), size / 256.0)
    lifted = (stored + step[..., None] * (colour - stored)) / kept[..., None]
    return lifted.astype(np.float32), (gain > 1.01) | (step > 0.01)


def _as_drawn(albedo: np.ndarray, detail: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The albedo as the swap will draw it — the de-lighting divides by ``detail`` (``_shading_detail``) limited to
    ``SHADING_RANGE``, so ``kept`` of the photo's shading stays in it: (kept, stored = albedo x kept, its luma)."""
    kept = detail / np.clip(detail, *SHADING_RANGE)
    stored = albedo * kept[..., None]
    return kept, stored, stored @ _LUMA_BGR


def _clean_level(luma: np.ndarray, region: np.ndarray, sigma: float, share: float) -> tuple[np.ndarray, np.ndarray]:
    """The level of the clean skin in ``region`` around each texel (blurred over ``sigma``): the region's level, then
    again over its texels brighter than ``share`` of it (a shadowed socket or fold is not the skin's level);
    (level, the clean texels)."""
    level = _normalised_blur(luma, region, sigma)
    clean = region & (luma > share * level)
    return _normalised_blur(luma, clean, sigma), clean


def _flatten_nose_shading(
    albedo: np.ndarray,
    shade: np.ndarray,
    labels: np.ndarray,
    face: np.ndarray,
    seen: np.ndarray,
    cfg: CleanupConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The nose's ridge and sidewalls (``NOSE_ZONE``): their broad lightness (``NOSE_SHADING_SIGMA``) against the clean
    skin around the nose, in log, kept within ``cfg.nose_shading_tolerance`` and of what departs beyond it
    ``1 - cfg.nose_shading`` of a shadow, ``1 - cfg.nose_highlight`` of a highlight (a grey gain: the colour and the
    fine detail stay).
    Judged on the albedo the identity will have (``_shading_detail``), so it is what the swap draws; (albedo, texels
    changed)."""
    size = albedo.shape[0]
    none = np.zeros((size, size), bool)
    skin = face & (labels == SKIN) & ~brow_mask(size)
    zone = nose_zone(size)
    if (skin & (zone > 0.5)).sum() < 50:
        return albedo, none
    detail = _shading_detail(shade, face)
    _, _, luma = _as_drawn(albedo, detail)
    # The reference: the skin around the nose (the cheeks beside it, under the eyes), its clean part (a shadowed
    # socket or fold is not the skin's level).
    level, _ = _clean_level(luma, skin & (zone < 0.05), size / 24.0, 0.85)
    broad = _normalised_blur(luma, skin, size * NOSE_SHADING_SIGMA)
    dev = np.log(np.maximum(broad, 1e-4) / np.maximum(level, 1e-4))
    kept = dev
    if cfg.nose_side_light > 0.0:
        # What one sidewall has darker than the other is the photo's light from the side, not the nose's shape (a nose
        # is about symmetric): taken out first, ``cfg.nose_side_light`` of it, toward the lighter side at the mirrored
        # place (where that was seen); what both sides share is judged as before.
        mx, my = mirror_map(size)
        mirrored = cv2.remap(dev.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        known = cv2.remap((skin & seen).astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        shared = np.where((mx >= 0) & (known > 0.5), np.maximum(dev, mirrored), dev)
        kept = dev - cfg.nose_side_light * np.minimum(dev - shared + cfg.nose_shading_tolerance, 0.0)
    tol = cfg.nose_shading_tolerance
    share = np.where(kept > 0.0, cfg.nose_highlight, cfg.nose_shading)
    target = np.sign(kept) * (np.minimum(np.abs(kept), tol) + (1.0 - share) * np.maximum(np.abs(kept) - tol, 0.0))
    where = cv2.GaussianBlur((zone * (seen & (labels == SKIN))).astype(np.float32), (0, 0), size / 256.0)
    gain = np.exp((target - dev) * where)
    out = albedo * gain[..., None]
    return out.astype(np.float32), np.abs(gain - 1.0) > 0.01


NOSE_ZONE = (0.2, -0.3, -0.02)
"""|x| under, and y between (canonical, eye-corner distances): the nose's ridge and sidewalls from below the eyes' inner
corners down to the nostrils' zone (``engines.swap.texture.NOSTRIL_ZONE``, whose shadow is ``nose_shadows``');
soft-edged (``nose_zone``). Not higher: the shadow of the eyes' inner corners beside the bridge is the eyes' (from
-0.42, s1.jpg's likeness from the brows down on d10.mp4 cost 0.01 more)."""
NOSE_SHADING_SIGMA = 1.0 / 96.0
"""The nose's broad lightness is its lightness averaged over this share of the texture's side (a quarter of the
ridge's width): a sidewall's shadow and the ridge's highlight are broader, freckles and pores finer."""


@functools.cache
def nose_zone(size: int) -> np.ndarray:
    """(size, size) float32 0..1: ``NOSE_ZONE`` on the layout, soft-edged (cached, read-only)."""
    x, y = canonical_sides(size)
    zone = (x < NOSE_ZONE[0]) & (y > NOSE_ZONE[1]) & (y < NOSE_ZONE[2])
    return soft_zone(zone, size / 96.0)


def _lift_cheek_shadows(
    albedo: np.ndarray,
    shade: np.ndarray,
    labels: np.ndarray,
    face: np.ndarray,
    seen: np.ndarray,
    cfg: CleanupConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The cheeks' and folds' broad darkness (``cheek_shadow_zone``, averaged over ``CHEEK_SHADOW_SIGMA``) under
    ``CHEEK_SHADOW_TOLERANCE`` of the clean skin around (``CHEEK_REFERENCE_SIGMA``) brought ``cfg.cheek_shadows`` of
    the way up to it, and to no less than ``cfg.cheek_shadow_floor`` of it, by a smooth gain (the fine detail and the
    skin's colour stay). Judged on the albedo the identity will have (``_shading_detail``), so the lift is what the
    swap draws. Only as far as the photo's light casts shadows (``_lit_from_above``); (albedo, texels changed)."""
    size = albedo.shape[0]
    none = np.zeros((size, size), bool)
    skin, detail, amount = _photo_light(shade, labels, face)
    if amount <= 0.0:
        return albedo, none
    _, _, luma = _as_drawn(albedo, detail)
    # The reference: the clean skin around, over a neighbourhood wider than the shadow (the skin within it would call
    # the shadow skin).
    level, _ = _clean_level(luma, skin, size * CHEEK_REFERENCE_SIGMA, CHEEK_SHADOW_TOLERANCE)
    broad = _normalised_blur(luma, skin, size * CHEEK_SHADOW_SIGMA)
    ratio = broad / np.maximum(level, 1e-4)
    deficit = np.maximum(CHEEK_SHADOW_TOLERANCE - ratio, 0.0)
    target = np.maximum(ratio + cfg.cheek_shadows * deficit, np.minimum(cfg.cheek_shadow_floor, CHEEK_SHADOW_TOLERANCE))
    gain = np.maximum(target / np.maximum(ratio, 1e-4), 1.0)
    where = cheek_shadow_zone(size) * amount * (seen & (labels == SKIN))
    gain = np.power(gain, cv2.GaussianBlur(where.astype(np.float32), (0, 0), size / 256.0))
    # A gain: a shadow is the lit skin scaled down; the texels keep their fine detail and their chromaticity (moving
    # it toward the clean skin's as well was tried: d10.mp4 x obama.jpg's left eye ring read the same chroma, 7.2).
    return (albedo * gain[..., None]).astype(np.float32), gain > 1.01


def _photo_light(shade: np.ndarray, labels: np.ndarray, face: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The face's skin (not the brows), the shading the albedo keeps (``_shading_detail``) and how far the photo's
    light is from above (``_lit_from_above`` on the nose base; 0 where too little skin was seen to judge)."""
    size = labels.shape[0]
    skin = face & (labels == SKIN) & ~brow_mask(size)
    detail = _shading_detail(shade, face)
    if skin.sum() < 100:
        return skin, detail, 0.0
    zones = shadow_zones(size)
    return skin, detail, _lit_from_above(detail, skin & (np.maximum(zones.nostrils, zones.under_nose) > 0.5))


def _lift_eye_rings(
    albedo: np.ndarray,
    shade: np.ndarray,
    labels: np.ndarray,
    face: np.ndarray,
    seen: np.ndarray,
    cfg: CleanupConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The broad darkness below and beside the eyes (``eye_ring_zone``, averaged over ``EYE_RING_SIGMA``) under
    ``EYE_RING_TOLERANCE`` of the clean skin around (``EYE_RING_REFERENCE_SIGMA``) brought ``cfg.eye_rings`` of the way
    up to it by a smooth gain (the fine detail and the colour stay). Judged on the albedo the identity will have
    (``_shading_detail``), so the lift is what the swap draws. Only as far as the photo's light casts no shadows
    (``_lit_from_above``); (albedo, texels changed)."""
    size = albedo.shape[0]
    none = np.zeros((size, size), bool)
    skin, detail, lit = _photo_light(shade, labels, face)
    amount = cfg.eye_rings * (1.0 - lit) if skin.sum() >= 100 else 0.0
    if amount <= 0.0:
        return albedo, none
    _, _, luma = _as_drawn(albedo, detail)
    zone = eye_ring_zone(size)
    # The reference: the clean skin around the rings (the cheeks, the temples, the nose's bridge), over a neighbourhood
    # wider than them (the skin within would call the rings skin).
    level, _ = _clean_level(luma, skin & (zone < 0.05), size * EYE_RING_REFERENCE_SIGMA, EYE_RING_TOLERANCE)
    # The rings' broad brightness over their skin and the lower lids (not the openings, the upper lids or the brows).
    region = skin | (face & (eye_ring_area(size) & (labels == FEATURE)))
    broad = _normalised_blur(luma, region, size * EYE_RING_SIGMA)
    ratio = broad / np.maximum(level, 1e-4)
    # Only what both eyes share: make-up is worn on both, and so are dark circles, but a light from the side (or a
    # fringe's shadow) darkens one socket more than the other: the lighter side's ratio at the mirrored place is as
    # dark as the skin itself is there (woman.png, lit from her left: her far eye's ring 0.79 of her skin, her near
    # one's 0.93, left as it is). Where the mirrored place was not seen, the texel's own.
    mx, my = mirror_map(size)
    mirrored = cv2.remap(ratio.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    known = cv2.remap(region.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    ratio_shared = np.where((mx >= 0) & (known > 0.5), np.maximum(ratio, mirrored), ratio)
    deficit = np.maximum(EYE_RING_TOLERANCE - ratio_shared, 0.0)
    gain = np.maximum((ratio + amount * deficit) / np.maximum(ratio, 1e-4), 1.0)
    where = cv2.GaussianBlur((zone * (seen & region)).astype(np.float32), (0, 0), size / 256.0)
    gain = np.power(gain, where)
    return (albedo * gain[..., None]).astype(np.float32), gain > 1.01


EYE_RING = (0.35, -0.37, 0.32, 0.23)
"""Around each eye, the ellipse the eye ring's lift looks in (canonical, eye-corner distances, |x| and y of its centre,
its radii: the swap's ``engines.compose.relief.SOCKETS``, a little wider than the ring ``benchmarks/artifacts.py``
judges) ..."""
EYE_RING_LID_Y = -0.38
"""... below the lids' line (the eye's contour spans y -0.45 to -0.34, |x| 0.19 to 0.5): the lower lid and the skin
under it. The upper lid (its crease, the eye's shape from above) and the brows are features and stay; beside the eye,
beyond its corners (``EYE_RING_CORNERS``), the skin up to the ellipse's top is in."""
EYE_RING_CORNERS = (0.19, 0.5)
"""|x| of the eyes' inner and outer corners on the canonical face."""
EYE_RING_LASHES = 1.0 / 100.0
"""The lift fades in over this share of the texture's side from the eye opening (a few texels): the lash line, the
lids' edge, is the eye's shape and stays as dark as the photo has it."""
EYE_RING_TOLERANCE = 0.85
"""The rings' broad brightness may be this share of the clean skin around untouched (the skin under a face's eyes is
a little darker than its cheeks under a soft light: woman.png's lit side 0.93, her far side 0.79); what is darker is
taken out (``CleanupConfig.eye_rings``) ..."""
EYE_RING_SIGMA = 1.0 / 64.0
"""... measured as its brightness averaged over this share of the texture's side (a smudge of kohl under the lashes
and the ring under an eye are broad; the lashes and the lids' fine lines stay as the photo has them) ..."""
EYE_RING_REFERENCE_SIGMA = 1.0 / 10.0
"""... against the clean skin (brighter than ``EYE_RING_TOLERANCE`` of its neighbourhood) outside the zone over this
share of the texture's side (wider than the ring)."""


@functools.cache
def eye_ring_area(size: int) -> np.ndarray:
    """(size, size) bool: the skin and the lower lids around each eye (``EYE_RING``, ``EYE_RING_LID_Y``), not the
    openings, the upper lids or the brows (from the canonical face; cached, read-only)."""
    x, y = canonical_sides(size)
    labels = texture_labels(size)
    cx, cy, rx, ry = EYE_RING
    lower = (y > EYE_RING_LID_Y) & ~brow_mask(size)
    area = (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1.0) & ((labels == SKIN) | ((labels == FEATURE) & lower))
    area &= lower | (x < EYE_RING_CORNERS[0]) | (x > EYE_RING_CORNERS[1])
    area.setflags(write=False)
    return area


@functools.cache
def eye_ring_zone(size: int) -> np.ndarray:
    """(size, size) float32 0..1: ``eye_ring_area`` soft-edged, fading in from the eye openings over
    ``EYE_RING_LASHES`` (cached, read-only)."""
    soft = cv2.GaussianBlur(eye_ring_area(size).astype(np.float32), (0, 0), size / 96.0)
    opening = (texture_labels(size) == EYE_OPENING).astype(np.uint8)
    dist = cv2.distanceTransform(1 - opening, cv2.DIST_L2, 5)
    out = (np.clip(soft, 0.0, 1.0) * np.clip(dist / (size * EYE_RING_LASHES), 0.0, 1.0)).astype(np.float32)
    out.setflags(write=False)
    return out


CHEEK_SHADOW_TOLERANCE = 0.85
"""The cheeks' broad brightness may be this share of the clean skin around untouched (a face's own colour and what
the light model leaves of its contours); what is darker is a shadow, lifted (``CleanupConfig.cheek_shadows``) ..."""
CHEEK_SHADOW_SIGMA = 1.0 / 64.0
"""... measured as its brightness averaged over this share of the texture's side (a nostril's width: the shadow is
broad; a wrinkle, the fold's line and the pores stay as the photo has them) ..."""
CHEEK_REFERENCE_SIGMA = 1.0 / 10.0
"""... against the clean skin (brighter than ``CHEEK_SHADOW_TOLERANCE`` of its neighbourhood) over this share of the
texture's side (wider than the shadow under an eye)."""
CHEEK_ZONE_X = (0.12, 0.6)
CHEEK_ZONE_Y = (-0.32, 0.55)
"""Where a photo's relief casts shadows on the cheeks (canonical, eye-corner distances, |x| from the middle, y down):
from under the lower lids (-0.34) to the mouth's level, beside the nose out to the cheeks' sides; not the nostrils or
under the nose (``CleanupConfig.nose_shadows``)."""


@functools.cache
def cheek_shadow_zone(size: int) -> np.ndarray:
    """(size, size) float32 0..1 (soft-edged): the cheeks and the folds beside the nose, skin only, not the nostrils
    (from the canonical face; cached, read-only)."""
    x, y = canonical_sides(size)
    zone = (x > CHEEK_ZONE_X[0]) & (x < CHEEK_ZONE_X[1]) & (y > CHEEK_ZONE_Y[0]) & (y < CHEEK_ZONE_Y[1])
    zone &= texture_labels(size) == SKIN
    zone &= ~((x < NOSTRIL_ZONE[0]) & (y > NOSTRIL_ZONE[1]) & (y < NOSTRIL_ZONE[2]))
    return soft_zone(zone, size / 96.0)


NOSE_BELOW_FROM_DEG = 5.0
"""A photo seen from this far below the face or less gets the whole nose base's lift of its light
(``CleanupConfig.nose_shadows_below_deg``): the shared photos lit from above read biden.jpg -4, obama.jpg 1,
alex-lacamoire.png 4 (a moustache: none), roop_source.jpg 12, t1.jpg 27 degrees."""


def _dim_pale_mouth_skin(
    albedo: np.ndarray,
    shade: np.ndarray,
    labels: np.ndarray,
    face: np.ndarray,
    seen: np.ndarray,
    cfg: CleanupConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The skin round the mouth (``mouth_skin_zone``, and the skin-coloured rim of the lips: ``skin_beside_lips``) and
    the cheeks (``cheek_shadow_zone``): their broad brightness (``MOUTH_SKIN_SIGMA``) over ``MOUTH_SKIN_PALER`` times
    the cheeks' median brought down by ``cfg.mouth_skin_pale`` (round the mouth), ``cfg.pale_cheeks`` (on the cheeks) of
    what exceeds that, by a smooth grey gain (the fine detail, the skin's colour and the lips stay); only on a photo
    whose skin round the mouth is paler than its cheeks as a whole (``MOUTH_SKIN_PALE``). Judged on the albedo the
    identity will have (``_shading_detail``), so it is what the swap draws; (albedo, texels changed)."""
    size = albedo.shape[0]
    none = np.zeros((size, size), bool)
    skin = face & (labels == SKIN) & ~brow_mask(size)
    x, y = canonical_sides(size)
    cheeks = skin & (x > 0.3) & (x < 0.6) & (y > -0.1) & (y < 0.3)
    if cheeks.sum() < 100:
        return albedo, none
    mouth = mouth_skin_zone(size)
    ab = _lab(albedo, face)[..., 1:] - 128.0
    region = face & (skin | skin_beside_lips(ab, labels, skin, face))
    if (region & (mouth > 0.5)).sum() < 50:
        return albedo, none
    detail = _shading_detail(shade, face)
    _, _, luma = _as_drawn(albedo, detail)
    level = float(np.median(luma[cheeks]))
    ratio = _normalised_blur(luma, region, size * MOUTH_SKIN_SIGMA) / max(level, 1e-4)
    # A photo, not a spot: the skin round the mouth as a whole paler than the cheeks; a lit spot beside a mouth whose
    # skin is otherwise as light as the cheeks is the person's (or a highlight: ``_flatten_highlights``).
    pale = float(np.median(ratio[region & (mouth > 0.5)]))
    gate = float(np.clip((pale - MOUTH_SKIN_PALE[0]) / (MOUTH_SKIN_PALE[1] - MOUTH_SKIN_PALE[0]), 0.0, 1.0))
    if gate <= 0.0:
        return albedo, none
    share = np.maximum(mouth * cfg.mouth_skin_pale, cheek_shadow_zone(size) * cfg.pale_cheeks)
    target = MOUTH_SKIN_PALER + (1.0 - share) * np.maximum(ratio - MOUTH_SKIN_PALER, 0.0)
    gain = np.minimum(target / np.maximum(ratio, 1e-4), 1.0)
    where = cv2.GaussianBlur((gate * (seen & region)).astype(np.float32), (0, 0), size / 256.0)
    gain = np.power(gain, where)
    return (albedo * gain[..., None]).astype(np.float32), gain < 0.99


MOUTH_SKIN_PALER = 1.1
"""The skin round the mouth may be this many times as bright as the cheeks' median untouched (as the swap draws it:
about 3 L* over them); the shared photos' de-lit upper lips and the skin beside their lips read 0.6-1.1 times their
cheeks (a man's shaven upper lip darker), s1.jpg's 1.3 ..."""
MOUTH_SKIN_PALE = (1.08, 1.16)
"""... only on a photo whose skin round the mouth is, at its median, this many times as bright as its cheeks' median
(fully from the second): s1.jpg 1.25, roop_source.jpg 1.22 (her smile's stretched, lit skin under the lower lip). Left
as they are, a lit spot there being the person's (or a highlight): obama.jpg 0.94, biden.jpg 0.79 (grey, 0.79),
woman.png 1.00, t1.jpg 0.92, alex-lacamoire.png 0.71, lin-manuel-miranda.png 0.91; frames of s18.mp4 and d0.mp4
enrolled as photos 1.06 and 0.98 ..."""
MOUTH_SKIN_SIGMA = 1.0 / 64.0
"""... its brightness averaged over this share of the texture's side (a nostril's width: a pale patch is broader;
pores, freckles and the philtrum's ridges finer)."""
MOUTH_SKIN_ZONE = (0.42, 0.08, 0.95)
"""|x| under, and y between (canonical, eye-corner distances, y down): from under the nostrils (the nose's base at
0.10; the nostrils are ``nose_shadows``') past the mouth's corners (0.27, 0.44) and the lower lip (its edge at 0.74)
down the chin (to 0.97)."""


@functools.cache
def mouth_skin_zone(size: int) -> np.ndarray:
    """(size, size) float32 0..1 (soft-edged): the skin round the mouth (``MOUTH_SKIN_ZONE``), not the lips or the
    mouth opening (from the canonical face; cached, read-only)."""
    x, y = canonical_sides(size)
    zone = (x < MOUTH_SKIN_ZONE[0]) & (y > MOUTH_SKIN_ZONE[1]) & (y < MOUTH_SKIN_ZONE[2])
    zone &= (texture_labels(size) != LIPS) & (texture_labels(size) != MOUTH_OPENING)
    return soft_zone(zone, size / 96.0)


NOSE_SHADOW_SIGMA = 1.0 / 64.0
"""The nose base's broad darkness (its shadow) is its brightness averaged over this share of the texture's side (a
nostril's width); what is finer (the nostrils' rims, the creases) stays as the photo has it."""


BROAD_SHADING_SIGMA = 1.0 / 12.0
"""``engines.identity.store.BROAD_SIGMA``: the share of the texture's side over which the identity's de-lighting takes
the photo's broad light level (what it divides out in full; its detail around that only within ``SHADING_RANGE``)."""


def _shading_detail(shade: np.ndarray, face: np.ndarray) -> np.ndarray:
    """(T, T) the photo's shading ``shade`` relative to its broad level (``BROAD_SHADING_SIGMA``), as the identity's
    de-lighting splits it (``Identity.albedo``: the broad level divided out, this detail only within
    ``SHADING_RANGE``): ``albedo * detail / clip(detail, SHADING_RANGE)`` is the albedo the swap draws, up to a
    constant."""
    sigma = shade.shape[0] * BROAD_SHADING_SIGMA
    broad = np.maximum(_normalised_blur(shade, face.astype(np.float32), sigma), 1e-4)
    return (shade / broad).astype(np.float32)


NOSE_UNDERSIDE_SHADE = (0.55, 0.68)
"""A photo whose light model shades its nose's base (the 10th percentile of the shading's detail over the zone) to
under the first of these is lit from above, and its nose casts a shadow under itself (biden.jpg 0.41, obama.jpg 0.48,
roop_source.jpg 0.50); over the second, its light is frontal and casts none there: the darkness of its nose's base is
its nostrils' (s1.jpg 0.72 and woman.png 0.74, flash-lit: lifted whole, s1's likeness fell 0.02-0.04 of cosine), lifted
by ``CleanupConfig.nose_shadows_unlit`` of the lift."""


def _seen_from_above(pitch_deg: float, cfg: CleanupConfig) -> float:
    """1 for a photo seen from level or above (``NOSE_BELOW_FROM_DEG``), falling to 0 at ``cfg.nose_shadows_below_deg``
    below the face (always 1 where that is infinite)."""
    if not math.isfinite(cfg.nose_shadows_below_deg):
        return 1.0
    span = max(cfg.nose_shadows_below_deg - NOSE_BELOW_FROM_DEG, 1e-6)
    return float(np.clip((cfg.nose_shadows_below_deg - pitch_deg) / span, 0.0, 1.0))


def _lit_from_above(detail: np.ndarray, zone: np.ndarray) -> float:
    """0..1: how surely the photo's light comes from above, casting the nose's shadow (``NOSE_UNDERSIDE_SHADE``)."""
    if zone.sum() < 50:
        return 0.0
    low = float(np.percentile(detail[zone], 10))
    return float(np.clip((NOSE_UNDERSIDE_SHADE[1] - low) / (NOSE_UNDERSIDE_SHADE[1] - NOSE_UNDERSIDE_SHADE[0]), 0, 1))


MOUSTACHE_DETAIL = (1.6, 2.2)
"""The skin under the nose carrying this many times the cheeks' fine lightness detail (``_fine_detail``) or more is
hair, fully from the second: a moustache (lin-manuel-miranda.png 3.3, alex-lacamoire.png 2.5) is not the photo's
shadow; the shared photos without one read 1.0-1.4 (biden, obama, s1, roop_source, woman)."""


def _moustache(texture: np.ndarray, skin: np.ndarray, under_nose: np.ndarray) -> float:
    """0..1: how surely the photo has a moustache (``MOUSTACHE_DETAIL``)."""
    lightness = cv2.cvtColor(texture, cv2.COLOR_BGR2LAB)[..., 0].astype(np.float32)
    detail = _fine_detail(lightness)
    y = texture_canonical_y(texture.shape[0])
    cheeks = skin & (np.abs(texture_canonical_x(texture.shape[0])) > 0.35) & (y > -0.3) & (y < 0.3)
    lip = skin & under_nose
    if cheeks.sum() < 50 or lip.sum() < 50:
        return 0.0
    ratio = float(np.median(detail[lip])) / max(float(np.median(detail[cheeks])), 1e-3)
    return float(np.clip((ratio - MOUSTACHE_DETAIL[0]) / (MOUSTACHE_DETAIL[1] - MOUSTACHE_DETAIL[0]), 0.0, 1.0))


def _fine_detail(lightness: np.ndarray) -> np.ndarray:
    """(T, T) the lightness's fine detail (what a few texels' blur takes away: hairs, pores, grain), as its local
    root-mean-square over a few texels."""
    size = lightness.shape[0]
    fine = lightness - cv2.GaussianBlur(lightness, (0, 0), size / 170.0)
    return np.sqrt(cv2.GaussianBlur(fine * fine, (0, 0), size / 128.0))


def _relax_smile(
    albedo: np.ndarray, labels: np.ndarray, face: np.ndarray, seen: np.ndarray, amount: float
) -> tuple[np.ndarray, np.ndarray]:
    """The creases of a smile's folds beside the nose and the mouth lifted toward the clean skin a few texels around
    them by ``amount``; (albedo, texels changed). Only the creases: the folds' broad shading is part of how a
    recogniser knows the face (lifted against the skin a nostril's width around, roop_source.jpg's likeness fell
    0.04-0.07), and the mouth's corners are left (their dark pockets lifted too, the output's mouth opening followed
    the actor's less: Obama_speaking.mp4 x roop_source.jpg 0.87 -> 0.80; BENCHMARKS.md, issue 21)."""
    size = albedo.shape[0]
    skin = face & (labels == SKIN) & ~brow_mask(size)
    if skin.sum() < 100:
        return albedo, np.zeros((size, size), bool)
    return _lift_pockets(albedo, skin, seen, size * SMILE_CREASE_SIGMA, SMILE_FOLD_RATIO, smile_zone(size), amount)


SMILE_FOLD_RATIO = 0.9
"""Around a smiling mouth, de-lit skin under this share of the clean skin around it is all crease."""
SMILE_CREASE_SIGMA = 1 / 160
"""The neighbourhood (a share of the texture's side: a few texels) a fold's crease is measured against: the crease,
not the fold's broad shading."""


@functools.cache
def smile_zone(size: int) -> np.ndarray:
    """(size, size) float32 0..1 (soft-edged): where a smile folds the skin — beside the nose and the mouth down to
    the chin, skin only, not the nostrils (from the canonical face; cached, read-only)."""
    x, y = canonical_sides(size)
    folds = (x > 0.12) & (x < 0.62) & (y > 0.0) & (y < 0.85) & (texture_labels(size) == SKIN)
    folds &= ~((x < NOSTRIL_ZONE[0]) & (y < NOSTRIL_ZONE[2]))
    return soft_zone(folds, size / 128.0)


def _even_skin_colour(
    albedo: np.ndarray,
    labels: np.ndarray,
    face: np.ndarray,
    weight: np.ndarray,
    amount: float,
    tolerance: float,
    detail: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """From the brows down, the skin's broad a*b* (``SKIN_COLOUR_SIGMA``) brought toward the face's median skin colour
    by ``amount`` of what departs from it beyond ``tolerance``; each texel keeps ``detail`` of its colour's detail
    around the broad colour, and its luminance (only its chromaticity moves); (albedo, texels changed). The skin
    beside the lips (``skin_beside_lips``) is evened as skin."""
    size = albedo.shape[0]
    own = face & (labels == SKIN) & ~brow_mask(size) & (weight > 0.2)
    if own.sum() < 500:
        return albedo, np.zeros((size, size), bool)
    lab = _lab(albedo, face)
    ab = lab[..., 1:] - 128.0
    beside = skin_beside_lips(ab, labels, own, face & (weight > 0.2))
    skin = own | beside
    broad = np.dstack([_normalised_blur(ab[..., c], skin, size * SKIN_COLOUR_SIGMA) for c in range(2)])
    departure = broad - np.median(ab[own], axis=0)
    distance = np.linalg.norm(departure, axis=2)
    kept = tolerance + (1.0 - amount) * np.maximum(distance - tolerance, 0.0)
    shift = departure * (np.minimum(kept / np.maximum(distance, 1e-6), 1.0) - 1.0)[..., None]
    # The skin's fine colour around its broad colour: all but ``detail`` of it goes too (the texels keep their
    # lightness, so freckles, pores and creases stay).
    shift = shift - (1.0 - detail) * (ab - broad) * skin[..., None]
    # From the brows down (``SKIN_COLOUR_FROM_Y``): the skin only, the lids and brows are features and keep their
    # colour (eye shadow is part of how an eye reads).
    below = np.clip(
        (np.nan_to_num(texture_canonical_y(size), posinf=-9.0) - SKIN_COLOUR_FROM_Y[0])
        / (SKIN_COLOUR_FROM_Y[1] - SKIN_COLOUR_FROM_Y[0]),
        0.0,
        1.0,
    )
    where = cv2.GaussianBlur((face & ((labels == SKIN) | beside)).astype(np.float32), (0, 0), size / 256.0) * below
    # Only where the broad colour was measured on enough skin around: at the outline it is an extrapolation from a
    # few texels (an orange streak down biden.jpg's jaw, at the finer ``SKIN_COLOUR_SIGMA``).
    density = cv2.GaussianBlur(skin.astype(np.float32), (0, 0), size * SKIN_COLOUR_SIGMA)
    where = where * np.clip(2.0 * density, 0.0, 1.0)
    shift = shift * where[..., None]
    moved = lab.copy()
    moved[..., 1:] += shift
    # Back to linear light through the same exposure as ``_lab``; each channel scaled by the ratio, the luminance
    # put back as it was (the clipped highlights of the 8-bit-exposed copy keep their own level).
    gain = _lab_to_linear(moved) / np.maximum(_lab_to_linear(lab), 1e-4)
    out = albedo * gain
    luma_in, luma_out = albedo @ _LUMA_BGR, out @ _LUMA_BGR
    out = out * (luma_in / np.maximum(luma_out, 1e-6))[..., None]
    changed = np.linalg.norm(shift, axis=2) > 0.5
    return np.where(changed[..., None], out, albedo).astype(np.float32), changed


def skin_beside_lips(ab: np.ndarray, labels: np.ndarray, skin: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(T, T) bool: the texels of the band around the lips (the mesh's triangles touching the outer lip contour,
    labelled ``FEATURE``, below ``LIPS_BAND_FROM_Y``) whose colour (``ab``: a*, b* per texel) is nearer the skin's
    median (over ``skin``) than the lips' (over the ``seen`` lips): skin, not lipstick. Left out of the skin-colour
    evening as a feature, s1.jpg's olive shadow at her mouth's corners and under her lower lip stayed while the skin
    around was evened (its broad colour 9.0 a*b* units from her median skin at the 90th percentile; 5.4 evened): a
    yellow-green band around the lips on every actor (d10.mp4's upper-lip region, chroma 3.5 -> 2.7)."""
    lips = seen & (labels == LIPS)
    y = np.nan_to_num(texture_canonical_y(labels.shape[0]), nan=-9.0, posinf=-9.0, neginf=-9.0)
    band = seen & (labels == FEATURE) & (y > LIPS_BAND_FROM_Y)
    if lips.sum() < 30 or not band.any():
        return np.zeros(labels.shape, bool)
    to_skin = np.linalg.norm(ab - np.median(ab[skin], axis=0), axis=2)
    to_lips = np.linalg.norm(ab - np.median(ab[lips], axis=0), axis=2)
    return band & (to_skin < to_lips)


LIPS_BAND_FROM_Y = 0.0
"""``FEATURE`` texels below this height (canonical, eye-corner distances, y down) are the band around the lips (from
0.1 down); above it they are the eyes' and brows' (down to -0.2)."""


def _lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """``_lab``'s L*a*b* (OpenCV 8-bit scale, float) back to linear light at ``_lab``'s exposure."""
    scaled = lab * np.array([100.0 / 255.0, 1.0, 1.0], np.float32) - np.array([0.0, 128.0, 128.0], np.float32)
    srgb = cv2.cvtColor(scaled.astype(np.float32), cv2.COLOR_LAB2BGR)
    return srgb_to_linear(np.clip(srgb, 0.0, 1.0)).astype(np.float32)


SKIN_COLOUR_FROM_Y = (-0.7, -0.5)
"""The skin's colour is evened from the first of these heights down (canonical, eye-corner distances, y down; the
brows are at -0.6, the lower lids at -0.34), fully from the second: the skin around the eyes too (the lids and brows
are features, not skin, and keep their colour). From under the eyes only (-0.15), the olive of s1.jpg's skin around
her eyes (her fringe's shadow, de-lit) stayed: a yellow-green ring around her eyes on s18.mp4's close-up."""
SKIN_COLOUR_SIGMA = 1 / 64
"""The skin's broad colour is its a*b* averaged over this share of the texture's side (a blush's disc is about eight
times as wide; at 1/32 patches the size of s1.jpg's flash-lit lower cheek were detail, kept)."""


def _lift_mouth_corners(
    albedo: np.ndarray, labels: np.ndarray, face: np.ndarray, seen: np.ndarray, amount: float
) -> tuple[np.ndarray, np.ndarray]:
    """The dark pockets at the mouth's corners and the creases running down from them (``mouth_corner_zone``) lifted
    toward the clean skin and lips around them (a few nostrils' widths: the pockets are broad) by ``amount``;
    (albedo, texels changed)."""
    size = albedo.shape[0]
    around = face & ((labels == SKIN) | (labels == FEATURE) | (labels == LIPS)) & ~brow_mask(size)
    if around.sum() < 100:
        return albedo, np.zeros((size, size), bool)
    return _lift_pockets(albedo, around, seen, size * CORNER_SIGMA, CORNER_RATIO, mouth_corner_zone(size), amount)


def _lift_pockets(
    albedo: np.ndarray,
    region: np.ndarray,
    seen: np.ndarray,
    sigma: float,
    ratio: float,
    zone: np.ndarray,
    amount: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``albedo`` with its dark pockets inside ``region`` (texels darker than ``ratio`` of the level around them,
    over ``sigma`` texels) lifted toward the colour of the clean ``region`` around them, by ``zone`` (where: 0..1 per
    texel) times ``amount``, where the photos saw them (``seen``); (albedo, texels changed). The smile's folds
    and a closed mouth's corners are lifted this way, each with its own region, scale and zone."""
    size = albedo.shape[0]
    luma = albedo @ _LUMA_BGR
    level = _normalised_blur(luma, region, sigma)
    clean = region & (luma > ratio * level)
    level = _normalised_blur(luma, clean, sigma)
    colour = np.dstack([_normalised_blur(albedo[..., c], clean, sigma) for c in range(3)])
    depth = np.clip((1.0 - luma / np.maximum(level, 1e-4)) / (1.0 - ratio), 0.0, 1.0)
    depth = depth * depth * (3.0 - 2.0 * depth)
    weight = depth * zone * amount * (seen & region)
    strength = np.minimum(cv2.GaussianBlur(weight.astype(np.float32), (0, 0), size / 256.0), 1.0) * region
    return (albedo + strength[..., None] * (colour - albedo)).astype(np.float32), strength > 0.01


CLOSED_GAP = (0.015, 0.035)
"""A photo's inner lips this far apart (eye-corner distances, frontalised) or closer are closed, this far or more
open (biden.jpg: 0.007; s1.jpg, woman.png, talking: 0.045-0.054)."""
CORNER_RATIO = 0.9
"""At a mouth's corner, de-lit skin or lip under this share of the clean skin and lips around it is all shadow."""
CORNER_SIGMA = 1 / 40
"""The neighbourhood (a share of the texture's side) the corners' darkness is measured against."""
CORNER_CENTRE = (0.3, 0.5)
CORNER_RADII = (0.13, 0.22)
"""Where the pockets and their creases lie: an ellipse (canonical x from the middle, y down; eye-corner distances)
around each outer mouth corner (at 0.27, 0.44), reaching down toward the jaw."""


@functools.cache
def mouth_corner_zone(size: int) -> np.ndarray:
    """(size, size) float32 0..1 (soft-edged): around each mouth corner and down from it, not the mouth opening
    (from the canonical face; cached, read-only)."""
    x, y = canonical_sides(size)
    zone = ((x - CORNER_CENTRE[0]) / CORNER_RADII[0]) ** 2 + ((y - CORNER_CENTRE[1]) / CORNER_RADII[1]) ** 2 < 1.0
    zone &= texture_labels(size) != MOUTH_OPENING
    return soft_zone(zone, size / 96.0)


def _close_mouth(
    albedo: np.ndarray, labels: np.ndarray, seen: np.ndarray, at_opening: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The mouth opening, and teeth showing through the lips (much paler and greyer than the lips; with
    ``at_opening``, only where they join the opening, and coloured only on the lips and the opening:
    ``CleanupConfig.teeth_at_opening``), given the lips' colour (a smooth continuation of the lips around them);
    (albedo, texels changed)."""
    size = albedo.shape[0]
    lips = seen & (labels == LIPS)
    opening = labels == MOUTH_OPENING
    if lips.sum() < 30:
        return albedo, np.zeros((size, size), bool)
    lab = _lab(albedo, seen)
    ref = np.median(lab[lips], axis=0)
    ref_chroma = float(np.hypot(ref[1] - 128.0, ref[2] - 128.0))
    chroma = np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)
    teeth = lips & (lab[..., 0] > ref[0] + TEETH_LIGHTER) & (chroma < TEETH_GREYER * ref_chroma)
    teeth = cv2.morphologyEx(teeth.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    if at_opening:
        _, parts = cv2.connectedComponents(teeth.astype(np.uint8), connectivity=8)
        edge = cv2.dilate(opening.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        joined = np.unique(parts[teeth & edge])
        teeth = np.isin(parts, joined[joined > 0])
    teeth = cv2.dilate(teeth.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if at_opening:
        teeth &= lips | opening
    source = lips & ~teeth
    fill = fill_holes(albedo, source.astype(np.float32))
    target = (teeth | opening).astype(np.float32)
    amount = np.maximum(target, cv2.GaussianBlur(target, (0, 0), size / 256.0) * (lips | opening))
    out = albedo + amount[..., None] * (fill - albedo)
    return out.astype(np.float32), amount > 0.0


TEETH_LIGHTER = 25.0
"""L* (0-255 scale) above the lips' median at which a lip texel may be a tooth ..."""
TEETH_GREYER = 0.6
"""... when it is also this much less colourful than the lips."""


def _denoise(albedo: np.ndarray, labels: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Non-local means at a strength set by the noise measured on the skin (grainy photos get more)."""
    level = float(np.median((albedo @ _LUMA_BGR)[face])) if face.any() else 1.0
    scale = 0.35 / max(level, 1e-6)
    srgb = np.clip(linear_to_srgb(np.clip(albedo * scale, 0.0, 1.0)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(srgb, cv2.COLOR_BGR2GRAY).astype(np.float32)
    skin = face & (labels == SKIN)
    if skin.sum() < 100:
        return albedo
    # Noise sigma from the median absolute Laplacian on skin (Immerkaer-style estimate, robust to edges).
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    sigma = float(np.median(np.abs(lap[skin]))) * 1.4826 / np.sqrt(20.0)
    h = float(np.clip(1.1 * sigma, 0.0, 12.0))
    if h < 1.0:
        return albedo
    clean = cv2.fastNlMeansDenoisingColored(srgb, None, h, h, 5, 15)
    lin = srgb_to_linear(clean.astype(np.float32) / 255.0) / scale
    unclipped = face & (albedo.max(axis=2) * scale < 0.98)  # what the 8-bit copy clipped keeps its own value
    return np.where(unclipped[..., None], lin, albedo).astype(np.float32)


@functools.cache
def brow_mask(size: int) -> np.ndarray:
    """(size, size) bool: the brows (their contours filled, grown by a little), which are never filled in."""
    uv = face_topology().uv * size - 0.5
    mask = np.zeros((size, size), np.uint8)
    for brow in (RIGHT_BROW, LEFT_BROW):
        cv2.fillPoly(mask, [np.round(uv[list(brow)] * 4).astype(np.int32)], 1, shift=2)
    grow = max(1, size // 100)
    out = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)).astype(bool)
    out.setflags(write=False)
    return out


@functools.cache
def mirror_map(size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each texel, the texel at the same place on the other side of the face (``cv2.remap`` maps;
    -1 outside the layout). The mesh's own symmetry gives it: each vertex's mirror is the vertex nearest to
    its reflection on the canonical face, and a texel's mirror has the same barycentric weights in the
    mirrored triangle."""
    topo = face_topology()
    mirror = mirror_vertices()
    raster = texture_raster(size)
    tris = raster.triangles[raster.tri]
    uv = topo.uv[mirror[tris]]  # (N, 3, 2)
    pos = np.einsum("nk,nkc->nc", raster.weights, uv) * size - 0.5
    flat_x = np.full(size * size, -1.0, np.float32)
    flat_y = np.full(size * size, -1.0, np.float32)
    flat_x[raster.pixels], flat_y[raster.pixels] = pos[:, 0], pos[:, 1]
    mx, my = flat_x.reshape(size, size), flat_y.reshape(size, size)
    for arr in (mx, my):
        arr.setflags(write=False)
    return mx, my

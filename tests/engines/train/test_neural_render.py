"""The deferred-neural-rendering probe (engines.train.neural_render) on tiny facesets of the shared clips: the
mesh's texture coordinates land on the face, a few iterations lower the loss, a texture it starts from is what
it draws before training, and a swap lays the person over the actor's face only. Seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.errors import InputError
from engines.train.faceset import load_faceset
from engines.train.losses import face_loss
from engines.train.neural_render import DnrConfig, DnrTrainConfig, DnrTrainer, export_onnx, uv_maps

TINY = DnrConfig(resolution=64, texture_px=32, channels=4, levels=2, dims=8)


def test_texture_coordinates_cover_the_face_mask(facesets: tuple[Path, Path]) -> None:
    """The rasterised mesh covers the faceset's face oval (drawn from the same mesh) and little else, and every
    covered pixel has texture coordinates inside the layout."""
    fs = load_faceset(facesets[1], 64)
    uv, covered = uv_maps(fs.landmarks, 64)
    assert uv.shape == (len(fs), 64, 64, 2) and covered.shape == (len(fs), 64, 64)
    face = fs.masks[..., 0].astype(np.float32) / 255.0
    both = (covered * face).sum()
    assert both / face.sum() > 0.95 and both / covered.sum() > 0.95
    inside = uv[covered > 0]
    assert inside.min() > 0.0 and inside.max() < 1.0
    assert np.all(uv[covered == 0] == 0.0)


def test_a_few_iterations_lower_the_loss(facesets: tuple[Path, Path], one_thread: object) -> None:
    trainer = DnrTrainer(DnrTrainConfig(net=TINY, batch=4), load_faceset(facesets[0], 64))

    def loss() -> float:
        gen = torch.Generator().manual_seed(99)
        with torch.no_grad():
            uv, covered, target, masks = trainer.sample(8, gen)
            return float(face_loss(trainer.net(uv, covered), masks[:, :1], target, masks, trainer.cfg.loss))

    before = loss()
    for _ in range(30):
        trainer.step()
    after = loss()
    assert after < 0.7 * before, (before, after)
    assert np.isfinite(trainer.last_losses).all()


def test_an_initial_texture_is_what_it_draws_before_training(facesets: tuple[Path, Path]) -> None:
    """The colour channels start from a texture over the layout (the mesh swap's identity texture): untrained,
    the renderer draws that texture on the mesh (its U-Net adds nothing yet)."""
    fs = load_faceset(facesets[0], 64)
    texture = np.zeros((64, 64, 3), np.uint8)
    texture[:32] = (40, 90, 200)  # the upper half of the layout (forehead, eyes) one colour ...
    texture[32:] = (200, 160, 30)  # ... the lower half (mouth, chin) another
    trainer = DnrTrainer(DnrTrainConfig(net=TINY), fs, init_texture=texture)
    face, covered = trainer.render(fs.landmarks[:2])
    uv, _ = uv_maps(fs.landmarks[:2], 64)
    drawn = face.permute(0, 2, 3, 1).numpy() * 255.0
    well_inside = (covered[:, 0].numpy() > 0) & (np.abs(uv[..., 1] - 0.5) > 0.1)  # not at the halves' seam
    expected = np.where((uv[..., 1] < 0.5)[..., None], (40, 90, 200), (200, 160, 30))
    assert np.abs(drawn - expected)[well_inside].max() < 1.0


def test_swap_draws_the_person_over_the_actors_face_only(facesets: tuple[Path, Path]) -> None:
    trainer = DnrTrainer(DnrTrainConfig(net=TINY), load_faceset(facesets[0], 64))
    dst = load_faceset(facesets[1], 64)
    out = trainer.swap(dst.images[:3], dst.masks[:3], dst.landmarks[:3]).permute(0, 2, 3, 1).numpy()
    assert out.shape == (3, 64, 64, 3) and out.min() >= 0.0 and out.max() <= 1.0
    outside = dst.masks[:3, ..., 0] == 0
    assert np.abs(out * 255.0 - dst.images[:3])[outside].max() < 0.51
    inside = dst.masks[:3, ..., 0] == 255
    assert np.abs(out * 255.0 - dst.images[:3])[inside].mean() > 5.0


def test_onnx_export_renders_what_torch_renders(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    """The exported graph (texture baked in; uv and coverage in, face out) gives ONNX Runtime's answer equal to
    torch's on real meshes: what a runtime would register and run."""
    from engines.runtime.onnxrt import OrtSession

    fs = load_faceset(facesets[0], 64)
    trainer = DnrTrainer(DnrTrainConfig(net=TINY, batch=4), fs)
    for _ in range(3):
        trainer.step()
    export_onnx(trainer.net, tmp_path / "renderer.onnx")
    session = OrtSession(tmp_path / "renderer.onnx", threads=1)
    uv, covered = uv_maps(fs.landmarks[:3], 64)
    out = session.run({"uv": uv, "covered": covered[..., None]})["face"]
    expected, _ = trainer.render(fs.landmarks[:3])
    assert out.shape == (3, 64, 64, 3)
    assert np.abs(out - expected.permute(0, 2, 3, 1).numpy()).max() < 1e-5


def test_the_swapper_draws_the_person_in_the_faces_window(
    facesets: tuple[Path, Path], clips: Path, models_dir: Path, tmp_path: Path
) -> None:
    """The exported renderer, registered as a ``dnr`` model, run without torch on a tracked d3 frame
    (``NeuralRenderSwapper``, the learned swappers' ``swap``): a face in the mesh swap's window at its work size,
    its mask on the mesh's face and nowhere outside it, and the face there is not the actor's; the actor's upper
    lids are left to the actor."""
    from engines.swap.learned import NeuralRenderSwapper, load_swapper
    from engines.swap.mesh import MeshSwapper
    from engines.swap.user_models import UserModelStore
    from streamer.commands.faceset import build_tracker
    from tests.face_helpers import clip_frames

    trainer = DnrTrainer(DnrTrainConfig(net=TINY, batch=4), load_faceset(facesets[0], 64))
    for _ in range(5):
        trainer.step()
    export_onnx(trainer.net, tmp_path / "renderer.onnx")
    store = UserModelStore(tmp_path / "data")
    store.add(tmp_path / "renderer.onnx", name="renderer", unverified=True)
    swapper = load_swapper(store, "renderer")
    assert isinstance(swapper, NeuralRenderSwapper)
    image, t = clip_frames(clips / "d3.mp4", 1)[0]
    face = build_tracker(str(models_dir)).update(image, t)[0]
    mesh = MeshSwapper()
    geometry = mesh.geometry(image, face.landmarks)
    assert geometry is not None
    out = swapper.swap(image, face.landmarks, face.points5, geometry)
    assert out.image.shape == (*geometry.work_size, 3) and out.mask.shape == geometry.work_size
    import cv2

    labels = geometry.labels()
    on_face = labels >= 0
    reach = 2 * out.pixel_px * geometry.work_size[1] / geometry.window.width  # two of the renderer's 64 px
    # The mesh's face, less the band at its outline the renderer does not learn (one of its pixels) ...
    inside = cv2.distanceTransform(on_face.astype(np.uint8), cv2.DIST_L2, 3) > reach
    assert (out.mask[inside] > 0.5).mean() > 0.9
    # ... and nothing beyond it farther than the renderer's raster reaches.
    off = cv2.distanceTransform((~on_face).astype(np.uint8), cv2.DIST_L2, 3)
    assert out.mask[off > reach].max() < 0.01
    actor = geometry.to_work(mesh.actor_window(image, geometry))
    drawn = out.mask > 0.99
    assert np.abs(out.image[drawn].astype(np.float32) - actor[drawn]).mean() > 5.0
    # The actor's upper lids stay (LIDS_KEPT): halfway from each lid's middle to the brow above it, no face drawn.
    scale = np.array([geometry.work_size[1] / geometry.window.width, geometry.work_size[0] / geometry.window.height])
    work = (geometry.landmarks[:, :2] - (geometry.window.x0, geometry.window.y0)) * scale
    for lid, brow in ((159, 65), (386, 295)):  # each eye's upper lid middle, the brow's lower edge above it
        x, y = np.round((work[lid] + work[brow]) / 2).astype(int)
        assert out.mask[y, x] < 0.05
    x, y = np.round(work[1]).astype(int)  # the nose tip: drawn
    assert out.mask[y, x] > 0.95


def _inside_outline(covered: np.ndarray) -> np.ndarray:
    """Drawn pixels (N, R, R) at least one pixel in from the drawn mesh's outline."""
    import cv2

    return np.stack([cv2.erode(c.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0 for c in covered])


def test_nothing_at_or_past_the_drawn_outline_teaches_the_renderer(
    facesets: tuple[Path, Path], one_thread: object
) -> None:
    """At the drawn mesh's outline a crop mixes the face with the wall behind it, and the texels drawn there are
    ones a frontal faceset shows nowhere else: taught the wall, they drew an orange-brown streak down the far
    cheek of heads turned further (issue 19). A prediction wrong only at the outline and beyond costs nothing;
    wrong inside, it does."""
    trainer = DnrTrainer(DnrTrainConfig(net=TINY), load_faceset(facesets[0], 64))
    uv, covered, target, masks = trainer.sample(8, torch.Generator().manual_seed(3))
    inner = torch.from_numpy(_inside_outline(covered.numpy()))[:, None]
    wrong_outside = torch.where(inner, target, 1.0 - target)
    assert float(face_loss(wrong_outside, masks[:, :1], target, masks, trainer.cfg.loss)) < 1e-6
    wrong_inside = torch.where(inner, 1.0 - target, target)
    assert float(face_loss(wrong_inside, masks[:, :1], target, masks, trainer.cfg.loss)) > 0.5


def test_texels_seen_only_at_the_outline_learn_the_skin(facesets: tuple[Path, Path], one_thread: object) -> None:
    """Obama_speaking's frames are near frontal: the texels of the cheeks' rims are drawn only at the outline,
    where the crop shows the wall. The training shows them the mirrored face's other cheek instead: what they
    are taught (the training targets' colour, weighed as the loss weighs them) is the cheeks' skin, not the
    wall (70 levels off on this faceset before the fix)."""
    fs = load_faceset(facesets[0], 64)
    side = TINY.texture_px
    uv, covered = uv_maps(fs.landmarks, 64)
    texel = np.clip((uv[..., 1] * side).astype(int), 0, side - 1) * side + np.clip(
        (uv[..., 0] * side).astype(int), 0, side - 1
    )
    inner = _inside_outline(covered)
    at_outline = np.bincount(texel[(covered > 0) & ~inner], minlength=side * side) > 0
    inside = np.bincount(texel[inner], minlength=side * side) > 0
    u = (np.arange(side * side) % side + 0.5) / side
    v = (np.arange(side * side) // side + 0.5) / side
    rim_only = at_outline & ~inside
    cheeks = inside & (np.abs(u - 0.5) > 0.25) & (np.abs(v - 0.55) < 0.15)
    assert rim_only.sum() > 20 and cheeks.sum() > 20

    trainer = DnrTrainer(DnrTrainConfig(net=TINY), fs)
    gen = torch.Generator().manual_seed(5)
    colour, weight = np.zeros((side * side, 3)), np.zeros(side * side)
    for _ in range(60):
        uv_s, _, target, masks = trainer.sample(8, gen)
        t = (uv_s[..., 1] * side).long().clamp(0, side - 1) * side + (uv_s[..., 0] * side).long().clamp(0, side - 1)
        w = masks[:, 0].flatten().numpy()
        np.add.at(colour, t.flatten().numpy(), target.permute(0, 2, 3, 1).reshape(-1, 3).numpy() * 255.0 * w[:, None])
        np.add.at(weight, t.flatten().numpy(), w)
    taught = colour / np.maximum(weight, 1e-9)[:, None]
    skin = np.median(taught[cheeks & (weight > 0)], axis=0)
    learned = rim_only & (weight > 0)
    assert learned.sum() >= 3, "the rim's texels learn nothing"
    assert np.abs(taught[learned] - skin).max() < 25.0, (np.abs(taught[learned] - skin).max(axis=1), skin)


def test_bad_input_is_refused(facesets: tuple[Path, Path]) -> None:
    with pytest.raises(InputError, match="loaded at 64 px"):
        DnrTrainer(DnrTrainConfig(net=DnrConfig(resolution=128)), load_faceset(facesets[0], 64))
    with pytest.raises(InputError, match="multiple of 8"):
        DnrConfig(resolution=60)
    with pytest.raises(InputError, match="levels"):
        DnrConfig(texture_px=16, levels=4)


@pytest.fixture(scope="module")
def made_up(tmp_path_factory: pytest.TempPathFactory, clips: Path, models_dir: Path) -> tuple[Path, Path]:
    """(Obama, d10's made-up actress): a few frames of each at 128 px, the trained renderer's size."""
    from tests.train_helpers import tiny_faceset

    root = tmp_path_factory.mktemp("made-up")
    obama = tiny_faceset(clips / "Obama_speaking.mp4", root / "obama", models_dir, frames=3, resolution=128)
    return obama, tiny_faceset(clips / "d10.mp4", root / "d10", models_dir, frames=3, resolution=128)


def test_colour_match_bounds_the_chroma_spread_and_keeps_the_lids_skin_coloured(made_up: tuple[Path, Path]) -> None:
    """Obama's face matched to d10's actress, whose made-up face has a far larger chroma spread than his (Cb about
    1.4x): the means move to hers, luma's spread too, but Cb and Cr spread by at most ``CHROMA_SPREAD`` — stretched
    fully, his greyish upper lids went grey-lilac, further from her skin's colour; his dark brows take the means'
    tint by their luma, not in full (teal). The live swap's numpy and the training's torch colour match agree."""
    import cv2

    from engines.face.topology import LEFT_BROW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE
    from engines.swap.neural import _TO_YCC, CHROMA_SPREAD, colour_match, drawn, spread_ratio
    from engines.train.neural_render import colour_match as torch_colour_match

    obama, actress = (load_faceset(p, 128) for p in made_up)
    face = obama.images[0].astype(np.float32) / 255.0
    actor = actress.images[0].astype(np.float32) / 255.0
    _, covered = uv_maps(np.stack([obama.landmarks[0], actress.landmarks[0]]), 128)
    mask = drawn(covered[0], 128) * drawn(covered[1], 128)

    def ycc(x: np.ndarray, where: np.ndarray) -> np.ndarray:
        return x[where > 0].reshape(-1, 3) @ _TO_YCC.T * 255.0

    before, ref = ycc(face, mask), ycc(actor, mask)
    ratio = ref.std(axis=0) / before.std(axis=0)
    assert ratio[1] > CHROMA_SPREAD[1] + 0.05  # her Cb spread is far larger than his: the bound matters here
    out = colour_match(face, actor, mask)
    after = ycc(out, mask)
    assert np.all(np.abs(after.mean(axis=0) - ref.mean(axis=0)) < 3.0)  # her light and skin tone
    assert after[:, 0].std() == pytest.approx(ref[:, 0].std(), rel=0.05)  # her contrast
    spread = after[:, 1:].std(axis=0) / before[:, 1:].std(axis=0)
    assert np.all(spread <= CHROMA_SPREAD[1] + 0.02) and np.all(spread >= CHROMA_SPREAD[0] - 0.02)

    # His upper lids (eye to brow), against her cheek skin: nearer in chroma than with her full spread.
    lm = obama.landmarks[0][:, :2]
    lids = np.zeros((128, 128), np.uint8)
    for eye, brow in ((RIGHT_EYE, RIGHT_BROW), (LEFT_EYE, LEFT_BROW)):
        upper = [eye[0], *eye[9:], eye[8]]  # corner, the upper lid, the other corner
        cv2.fillPoly(lids, [np.round(lm[[*upper, *brow[5:]]]).astype(np.int32)], 1)
    cheeks = np.zeros((128, 128), np.uint8)
    for k in (50, 280):
        cv2.circle(cheeks, tuple(int(v) for v in np.round(actress.landmarks[0][k, :2])), 4, 1, -1)
    skin = ycc(actor, cheeks).mean(axis=0)[1:]
    b = before.mean(axis=0)
    full = (ycc(face, lids * (mask > 0)) - b) * (ref.std(axis=0) / before.std(axis=0)) + ref.mean(axis=0)
    bounded = ycc(out, lids * (mask > 0))
    assert len(bounded) > 50
    assert np.abs(bounded.mean(axis=0)[1:] - skin).sum() < np.abs(full.mean(axis=0)[1:] - skin).sum() - 1.0

    # His brows (dark, grey) take the mean's tint in proportion to their luma: added in full, her paler, less red
    # skin's shift (Cb up, Cr down) turned them teal.
    brows = np.zeros((128, 128), np.uint8)
    for brow in (RIGHT_BROW, LEFT_BROW):
        cv2.fillPoly(brows, [np.round(lm[list(brow)]).astype(np.int32)], 1)
    brows *= (mask > 0).astype(np.uint8)
    added = (ycc(face, brows) - b) * spread_ratio(ref.std(axis=0) / before.std(axis=0)) + ref.mean(axis=0)
    tinted = ycc(out, brows)
    assert len(tinted) > 50
    assert added.mean(axis=0)[1] - tinted.mean(axis=0)[1] > 2.0  # less blue
    assert tinted.mean(axis=0)[2] - added.mean(axis=0)[2] > 1.0  # less green

    twin = torch_colour_match(
        torch.from_numpy(face).permute(2, 0, 1)[None],
        torch.from_numpy(actor).permute(2, 0, 1)[None],
        torch.from_numpy(mask)[None, None],
    )
    assert np.abs(twin[0].permute(1, 2, 0).numpy() - out).max() < 1e-4


def test_shading_match_takes_the_actors_light_across_the_face(made_up: tuple[Path, Path]) -> None:
    """Obama's face carries his footage's light; matched to d10's actress, the light's smooth pattern over the face
    (luma at ``SHADING_SIGMA``) comes most of the way to hers, while the detail finer than that stays his."""
    import cv2

    from engines.swap.neural import SHADING_SIGMA, colour_match, drawn, shading_match

    obama, actress = (load_faceset(p, 128) for p in made_up)
    face = obama.images[0].astype(np.float32) / 255.0
    actor = actress.images[0].astype(np.float32) / 255.0
    _, covered = uv_maps(np.stack([obama.landmarks[0], actress.landmarks[0]]), 128)
    mask = drawn(covered[0], 128) * drawn(covered[1], 128)
    matched = colour_match(face, actor, mask)
    out = shading_match(matched, actor, mask, actress.landmarks[0])
    sigma = SHADING_SIGMA * 128
    inner = cv2.erode((mask > 0.99).astype(np.uint8), np.ones((int(sigma) | 1,) * 2, np.uint8)) > 0
    assert inner.sum() > 2000

    def smooth(x: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey * mask, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(mask, (0, 0), sigma), 1e-3)

    before = np.abs(smooth(matched) - smooth(actor))[inner].mean()
    after = np.abs(smooth(out) - smooth(actor))[inner].mean()
    assert before > 0.02 and after < 0.5 * before, (before, after)

    def detail(x: np.ndarray) -> np.ndarray:
        return x - cv2.GaussianBlur(x, (0, 0), 1.5)

    assert np.abs(detail(out) - detail(matched))[inner].mean() < 0.25 * np.abs(detail(matched))[inner].mean()


def test_tone_match_takes_the_actors_skin_tone_across_the_face(made_up: tuple[Path, Path]) -> None:
    """After the colour and light match, the face's smooth chroma over the skin (at ``TONE_SIGMA``) comes most of the
    way to d10's actress's: Obama's forehead is more yellow than his cheeks, hers paler and pinker. The luma and the
    chroma's fine detail stay."""
    import cv2

    from engines.swap.neural import TONE_SIGMA, colour_match, drawn, shading_match, tone_match

    obama, actress = (load_faceset(p, 128) for p in made_up)
    face = obama.images[0].astype(np.float32) / 255.0
    actor = actress.images[0].astype(np.float32) / 255.0
    _, covered = uv_maps(np.stack([obama.landmarks[0], actress.landmarks[0]]), 128)
    mask = drawn(covered[0], 128) * drawn(covered[1], 128)
    lm = actress.landmarks[0]
    lit = shading_match(colour_match(face, actor, mask), actor, mask, lm)
    out = tone_match(lit, actor, mask, lm)
    sigma = TONE_SIGMA * 128
    inner = cv2.erode((mask > 0.99).astype(np.uint8), np.ones((int(sigma) | 1,) * 2, np.uint8)) > 0
    assert inner.sum() > 2000

    def lab(x: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_BGR2LAB)

    def smooth(x: np.ndarray) -> np.ndarray:
        return (
            cv2.GaussianBlur(x * mask[..., None], (0, 0), sigma)
            / np.maximum(cv2.GaussianBlur(mask, (0, 0), sigma), 1e-3)[..., None]
        )

    before = np.abs(smooth(lab(lit)) - smooth(lab(actor)))[inner][:, 1:].mean()
    after = np.abs(smooth(lab(out)) - smooth(lab(actor)))[inner][:, 1:].mean()
    assert before > 1.0 and after < 0.6 * before, (before, after)
    assert np.abs(lab(out)[..., 0] - lab(lit)[..., 0])[inner].mean() < 1.5  # the light stays (L* 0..100)

    def detail(x: np.ndarray) -> np.ndarray:
        return x - cv2.GaussianBlur(x, (0, 0), 1.5)

    fine_out, fine_lit = (detail(lab(x)[..., 1:]) for x in (out, lit))
    assert np.abs(fine_out - fine_lit)[inner].mean() < 0.3 * np.abs(fine_lit)[inner].mean()

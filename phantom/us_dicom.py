"""Generate synthetic ultrasound DICOM instances (B-mode lymph-node phantom) with ground truth.

Everything written here says it is synthetic: PatientName ``SYNTHETIC^PHANTOM`` and an
ImageComments line. Pixels are deterministic for a given seed; the header is
:func:`phantom.header.us_dataset`'s (the one header builder of the phantom), with the storage
variants scanners send layered on top.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from phantom.header import (
    US_IMAGE_STORAGE,
    US_MULTIFRAME_STORAGE,
    InstanceIdentity,
    calibrated_region,
    label_body_part,
    us_dataset,
)

SECONDARY_CAPTURE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.7")


@dataclass(frozen=True)
class NodeTruth:
    """Ground truth of the synthetic node: centre and semi-axes in pixels, malignant flag."""

    center_xy: tuple[float, float]
    semi_axes_xy: tuple[float, float]
    malignant: bool
    mm_per_pixel: float | None


def bmode_image(rows: int, cols: int, seed: int, malignant: bool) -> tuple[np.ndarray, np.ndarray, NodeTruth]:
    """A speckled grey B-mode frame with one hypoechoic oval node; returns (image, mask, truth)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    depth = 1.0 - 0.5 * yy / rows
    tissue = 110.0 * depth * rng.rayleigh(0.8, size=(rows, cols))
    cx, cy = cols * rng.uniform(0.4, 0.6), rows * rng.uniform(0.4, 0.6)
    ax = cols * rng.uniform(0.12, 0.2)
    ay = ax * (rng.uniform(0.75, 0.95) if malignant else rng.uniform(0.4, 0.55))
    inside = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
    node = 45.0 * rng.rayleigh(0.8, size=(rows, cols))
    if not malignant:  # echogenic fatty hilum
        hilum = ((xx - cx) / (ax * 0.45)) ** 2 + ((yy - cy) / (ay * 0.3)) ** 2 <= 1.0
        node = np.where(hilum, 150.0 * rng.rayleigh(0.8, size=(rows, cols)), node)
    image = np.where(inside, node, tissue)
    image = np.clip(image, 0, 255).astype(np.uint8)
    truth = NodeTruth((float(cx), float(cy)), (float(ax), float(ay)), malignant, None)
    return image, inside.astype(np.uint8), truth


def _jpeg_frames(frames: np.ndarray) -> list[bytes]:
    out = []
    for frame in frames:
        buffer = BytesIO()
        mode = "RGB" if frame.ndim == 3 else "L"
        Image.fromarray(frame, mode=mode).save(buffer, format="JPEG", quality=95)
        out.append(buffer.getvalue())
    return out


def make_us_dataset(
    *,
    seed: int = 0,
    rows: int = 256,
    cols: int = 320,
    frames: int = 1,
    rgb: bool = False,
    malignant: bool = False,
    mm_per_pixel: float | None = 0.1,
    transfer_syntax: UID = ExplicitVRLittleEndian,
    sop_class_uid: UID | None = None,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    instance_number: int = 1,
    series_description: str = "SYNTHETIC B-MODE",
    body_part: str | None = None,
) -> tuple[Dataset, np.ndarray, NodeTruth]:
    """Build one synthetic ultrasound instance; returns (dataset, mask, truth).

    ``body_part`` sets BodyPartExamined and the matching StudyDescription
    (``phantom.header.label_body_part``); without it the phantom's default body part is kept.
    """
    image, mask, truth = bmode_image(rows, cols, seed, malignant)
    truth = NodeTruth(truth.center_xy, truth.semi_axes_xy, malignant, mm_per_pixel)
    stack = np.stack([np.roll(image, k, axis=1) for k in range(frames)])
    if rgb:
        stack = np.repeat(stack[..., None], 3, axis=-1)
    if sop_class_uid is None:
        sop_class_uid = US_MULTIFRAME_STORAGE if frames > 1 else US_IMAGE_STORAGE

    study_instance_uid = study_instance_uid or generate_uid(entropy_srcs=["study", str(seed)])
    # one patient and accession per study, also for instances of one study made with other seeds
    study_number = int(hashlib.sha256(study_instance_uid.encode()).hexdigest(), 16) % 1_000_000
    identity = InstanceIdentity(
        patient_id=f"SYN{study_number:06d}",
        accession_number=f"A{study_number:06d}",
        study_instance_uid=study_instance_uid,
        series_instance_uid=series_instance_uid or generate_uid(entropy_srcs=["series", str(seed)]),
        sop_instance_uid=sop_instance_uid or generate_uid(),
        series_number=1,
        series_description=series_description,
        instance_number=instance_number,
    )
    regions = []
    if mm_per_pixel is not None:
        regions = [calibrated_region((0, 0, cols - 1, rows - 1), mm_per_pixel)]
    pixels = stack if frames > 1 else stack[0]
    ds = us_dataset(pixels, identity, regions, multi_frame=frames > 1, sop_class=sop_class_uid)
    if body_part is not None:
        label_body_part(ds, body_part)
    if sop_class_uid == SECONDARY_CAPTURE_STORAGE:
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.ConversionType = "WSD"

    if transfer_syntax == JPEGBaseline8Bit:
        if rgb:
            ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PixelData = encapsulate(_jpeg_frames(stack))
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = 10
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    elif transfer_syntax in (RLELossless, JPEGLSLossless, JPEG2000Lossless):
        ds.compress(transfer_syntax, generate_instance_uid=False)
    elif transfer_syntax == ImplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds, mask, truth


def write_us_study(folder: Path, *, seed: int = 0, count: int = 1, **kwargs: object) -> list[Path]:
    """Write ``count`` instances of one synthetic study into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = generate_uid(entropy_srcs=["study", str(seed)])
    series_uid = generate_uid(entropy_srcs=["series", str(seed)])
    paths = []
    for index in range(count):
        ds, _, _ = make_us_dataset(
            seed=seed * 1000 + index,
            study_instance_uid=study_uid,
            series_instance_uid=series_uid,
            instance_number=index + 1,
            **kwargs,  # type: ignore[arg-type]
        )
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


# --- Variants real scanners send that make_us_dataset does not write --------------------------

#: variant name -> what it exercises (see :func:`make_us_variant`)
US_VARIANTS: dict[str, str] = {
    "rgb_planar1": "RGB, PlanarConfiguration 1 (colour-by-plane), explicit VR little endian",
    "ybr_full": "YBR_FULL, uncompressed",
    "big_endian": "explicit VR big endian (retired transfer syntax, older scanners)",
    "jpeg_lossless": "JPEG lossless, first-order prediction (process 14, SV1), MONOCHROME2",
    "monochrome1": "MONOCHROME1 (inverted grey)",
    "palette16": "PALETTE COLOR with 16-bit LUTs",
    "palette16_segmented": "PALETTE COLOR with 16-bit segmented LUTs",
}


def _marker(code: int, payload: bytes) -> bytes:
    return bytes([0xFF, code]) + (len(payload) + 2).to_bytes(2, "big") + payload


def jpeg_lossless_frame(image: np.ndarray) -> bytes:
    """Encode one 8-bit grey frame as JPEG lossless (ISO 10918-1 process 14, predictor 1).

    Huffman table: the 17 difference categories as 5-bit codes (a valid, simple table).
    """
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError("jpeg_lossless_frame encodes 8-bit grey frames only")
    rows, cols = image.shape
    pixels = image.astype(np.int32)
    prediction = np.empty_like(pixels)
    prediction[0, 0] = 128
    prediction[0, 1:] = pixels[0, :-1]
    prediction[1:, 0] = pixels[:-1, 0]
    prediction[1:, 1:] = pixels[1:, :-1]
    bits: list[str] = []
    for diff in (pixels - prediction).ravel().tolist():
        size = abs(diff).bit_length()
        bits.append(format(size, "05b"))
        if size:
            bits.append(format(diff if diff > 0 else diff - 1 + (1 << size), f"0{size}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    data = bytearray()
    for start in range(0, len(stream), 8):
        byte = int(stream[start : start + 8], 2)
        data.append(byte)
        if byte == 0xFF:
            data.append(0x00)
    counts = bytes([0, 0, 0, 0, 17] + [0] * 11)
    return b"".join(
        [
            b"\xff\xd8",
            _marker(0xC3, bytes([8]) + rows.to_bytes(2, "big") + cols.to_bytes(2, "big")
                    + bytes([1, 1, 0x11, 0])),
            _marker(0xC4, bytes([0x00]) + counts + bytes(range(17))),
            _marker(0xDA, bytes([1, 1, 0x00, 1, 0, 0])),
            bytes(data),
            b"\xff\xd9",
        ]
    )


def _palette(index: int) -> np.ndarray:
    """16-bit (R, G, B) of the variants' palette: red and green rise, blue falls."""
    return np.array([index * 257, index * 257, (255 - index) * 257], dtype=np.uint16)


def _segmented(start: int, end: int) -> bytes:
    """A segmented LUT (PS3.3 C.7.9.2): one discrete entry, then a linear run of 255."""
    words = [0, 1, start, 1, 255, end]
    return np.array(words, dtype="<u2").tobytes()


def _set_palette(ds: Dataset, segmented: bool) -> None:
    ds.PhotometricInterpretation = "PALETTE COLOR"
    for channel, (start, end) in zip(("Red", "Green", "Blue"), ((0, 65535), (0, 65535), (65535, 0))):
        setattr(ds, f"{channel}PaletteColorLookupTableDescriptor", [256, 0, 16])
        if segmented:
            setattr(ds, f"Segmented{channel}PaletteColorLookupTableData", _segmented(start, end))
        else:
            column = {"Red": 0, "Green": 1, "Blue": 2}[channel]
            table = np.array([_palette(i)[column] for i in range(256)], dtype="<u2")
            setattr(ds, f"{channel}PaletteColorLookupTableData", table.tobytes())


def palette_colours(indices: np.ndarray) -> np.ndarray:
    """The RGB (16-bit) the palette variants map ``indices`` to, for tests to compare with."""
    table = np.stack([_palette(i) for i in range(256)])
    return table[indices]


def make_us_variant(variant: str, **kwargs: object) -> tuple[Dataset, np.ndarray, NodeTruth]:
    """One instance in a form of :data:`US_VARIANTS`, built from :func:`make_us_dataset`.

    ``kwargs`` go to :func:`make_us_dataset` (seed, rows, cols, UIDs; single frame). The
    pixel content is the same B-mode frame; each variant changes only how it is stored.
    Save with ``save_as(path, enforce_file_format=True)``; ``big_endian`` datasets carry
    their encoding and are written big endian.
    """
    if variant not in US_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {sorted(US_VARIANTS)}")
    rgb = variant in ("rgb_planar1", "ybr_full")
    ds, mask, truth = make_us_dataset(rgb=rgb, **kwargs)  # type: ignore[arg-type]
    image = ds.pixel_array
    if variant == "rgb_planar1":
        ds.PixelData = np.ascontiguousarray(image.transpose(2, 0, 1)).tobytes()
        ds.PlanarConfiguration = 1
    elif variant == "ybr_full":
        from pydicom.pixels import convert_color_space

        ds.PixelData = convert_color_space(image, "RGB", "YBR_FULL").astype(np.uint8).tobytes()
        ds.PhotometricInterpretation = "YBR_FULL"
    elif variant == "big_endian":
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    elif variant == "jpeg_lossless":
        ds.PixelData = encapsulate([jpeg_lossless_frame(image)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    elif variant == "monochrome1":
        ds.PixelData = (255 - image).astype(np.uint8).tobytes()
        ds.PhotometricInterpretation = "MONOCHROME1"
    else:
        _set_palette(ds, segmented=variant == "palette16_segmented")
    return ds, mask, truth

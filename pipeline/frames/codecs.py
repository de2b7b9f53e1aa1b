"""How stored frames are encoded: one class per ``frames.codec``, each writing and reading the
``frames`` array of one video in the store.

- ``zstd``/``lz4`` (:class:`BloscFrames`): a (N, H, W, 3) uint8 array, one frame per chunk,
  Blosc-compressed: lossless, the largest.
- ``jpeg`` (:class:`JpegFrames`): a (N,) array of variable-length bytes, one JPEG per element
  (libjpeg-turbo through ``imagecodecs``, 4:2:0): 5-7x smaller than zstd, as fast to decode.
- ``h264`` (:class:`H264Frames`): a (N / GOP,) array of variable-length bytes, one closed
  group of ``H264_GOP`` frames per element (an Annex-B H.264 stream with its own parameter
  sets, no B-frames, encoded by PyAV's libx264): 3.5-7.5x smaller than JPEG at equal PSNR; a
  frame is decoded from the start of its group, so random access is frame-exact.

Every chunk of every codec ends in a CRC-32C checksum (Zarr's ``crc32c`` codec): a corrupted
chunk fails its read instead of feeding wrong pixels. Frames are written in blocks that start
on a shard boundary (a multiple of ``H264_GOP`` frames), each block one shard write.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from pipeline.errors import InputError
from pipeline.frames.spec import H264_GOP, FrameSpec


def _bytes_dtype():
    """Zarr's variable-length bytes type, whose own format note (no Zarr v3 spec yet) is a
    warning on every array it creates; the store pins its zarr version."""
    from zarr.core.dtype import VariableLengthBytes
    return VariableLengthBytes()


def _bytes_elements(values: list[bytes]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class BloscFrames:
    """Lossless: the pixels themselves, Blosc ``zstd`` or ``lz4`` at level ``quality``."""


    def __init__(self, spec: FrameSpec):
        self.cname, self.clevel = spec.codec, spec.quality

    def create(self, group: zarr.Group, num_frames: int, height: int, width: int,
               shard_frames: int) -> zarr.Array:
        frame = (height, width, 3)
        return group.create_array(
            "frames", shape=(num_frames, *frame), dtype="uint8", chunks=(1, *frame),
            shards=(min(shard_frames, max(num_frames, 1)), *frame), fill_value=0,
            compressors=[BloscCodec(cname=self.cname, clevel=self.clevel, shuffle="noshuffle"),
                         Crc32cCodec()])

    def write(self, array: zarr.Array, start: int, frames: np.ndarray) -> None:
        array[start:start + len(frames)] = frames

    def read(self, array: zarr.Array, positions: np.ndarray) -> list[np.ndarray]:
        return [array[int(p)] for p in positions]


class JpegFrames:
    """One JPEG per frame at quality ``quality``, chroma subsampled 4:2:0 (as AVA's frame
    dumps); each frame is read and decoded on its own."""


    def __init__(self, spec: FrameSpec):
        self.quality = spec.quality

    def create(self, group: zarr.Group, num_frames: int, height: int, width: int,
               shard_frames: int) -> zarr.Array:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return group.create_array(
                "frames", shape=(num_frames,), dtype=_bytes_dtype(), chunks=(1,),
                shards=(min(shard_frames, max(num_frames, 1)),), fill_value=b"",
                compressors=[Crc32cCodec()])

    def write(self, array: zarr.Array, start: int, frames: np.ndarray) -> None:
        import imagecodecs
        encoded = [imagecodecs.jpeg8_encode(frame, level=self.quality, subsampling=(2, 2))
                   for frame in frames]
        array[start:start + len(frames)] = _bytes_elements(encoded)

    def read(self, array: zarr.Array, positions: np.ndarray) -> list[np.ndarray]:
        import imagecodecs
        return [imagecodecs.jpeg8_decode(array[int(p):int(p) + 1][0]) for p in positions]


class H264Frames:
    """Groups of ``H264_GOP`` frames, each an independent H.264 stream (x264 CRF ``quality``,
    ``-tune fastdecode``, closed GOP, no B-frames, parameter sets repeated)."""


    def __init__(self, spec: FrameSpec):
        self.crf = spec.quality

    def create(self, group: zarr.Group, num_frames: int, height: int, width: int,
               shard_frames: int) -> zarr.Array:
        if height % 2 or width % 2:
            raise InputError(f"H.264 stores frames of even size; these are {width}x{height}: "
                             "set frames.short_side (an even number) or another frames.codec",
                             key="frames.codec")
        units = -(-num_frames // H264_GOP)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return group.create_array(
                "frames", shape=(units,), dtype=_bytes_dtype(), chunks=(1,),
                shards=(min(shard_frames // H264_GOP, max(units, 1)),), fill_value=b"",
                compressors=[Crc32cCodec()])

    def _encoder(self, height: int, width: int):
        import av
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.time_base, encoder.framerate = Fraction(1, 30), Fraction(30)
        encoder.gop_size, encoder.max_b_frames, encoder.thread_count = H264_GOP, 0, 1
        encoder.options = {
            "crf": str(self.crf), "preset": "medium", "tune": "fastdecode",
            "x264-params": f"keyint={H264_GOP}:min-keyint={H264_GOP}:scenecut=0:bframes=0:"
                           "repeat-headers=1:annexb=1"}
        return encoder

    def write(self, array: zarr.Array, start: int, frames: np.ndarray) -> None:
        """Encode ``frames`` (starting on a GOP boundary) into whole groups, one element each."""
        import av
        encoder = self._encoder(frames.shape[1], frames.shape[2])
        packets: list[bytes] = []
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
                format="yuv420p")
            picture.pts = i
            packets.extend(bytes(p) for p in encoder.encode(picture))
        packets.extend(bytes(p) for p in encoder.encode(None))
        if len(packets) != len(frames):
            raise RuntimeError(f"x264 returned {len(packets)} packets for {len(frames)} frames")
        groups = [b"".join(packets[i:i + H264_GOP]) for i in range(0, len(packets), H264_GOP)]
        first = start // H264_GOP
        array[first:first + len(groups)] = _bytes_elements(groups)

    def read(self, array: zarr.Array, positions: np.ndarray) -> list[np.ndarray]:
        """Decode each needed group once, from its first frame up to the last one asked for."""
        frames: dict[int, np.ndarray] = {}
        positions = np.asarray(positions, dtype=np.int64)
        for unit in np.unique(positions // H264_GOP):
            wanted = positions[positions // H264_GOP == unit] - unit * H264_GOP
            decoded = decode_group(array[int(unit):int(unit) + 1][0], int(wanted.max()) + 1,
                                   keep=set(wanted.tolist()))
            if len(decoded) <= wanted.max():
                raise ValueError(f"H.264 group {unit} holds {len(decoded)} frames, frame "
                                 f"{int(wanted.max())} was asked for")
            for w in wanted:
                frames[int(unit * H264_GOP + w)] = decoded[int(w)]
        return [frames[int(p)] for p in positions]


def decode_group(data: bytes, count: int, keep: set[int] | None = None) -> list:
    """The first ``count`` frames of one stored H.264 group as RGB uint8 arrays; with
    ``keep``, only those positions are converted to RGB (the others are None: a frame is
    decoded to reach the next, but its colour conversion costs as much as decoding it)."""
    import av
    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_type = "NONE"   # one thread per loader worker; frame threads delay output
    out: list = []

    def convert(picture):
        return (picture.to_ndarray(format="rgb24") if keep is None or len(out) in keep
                else None)

    for packet in [*decoder.parse(data), *decoder.parse(None)]:
        for picture in decoder.decode(packet):
            out.append(convert(picture))
            if len(out) >= count:
                return out
    for picture in decoder.decode(None):
        out.append(convert(picture))
    return out[:count]


CODEC_CLASSES = {"zstd": BloscFrames, "lz4": BloscFrames, "jpeg": JpegFrames,
                 "h264": H264Frames}


def frame_codec(spec: FrameSpec) -> BloscFrames | JpegFrames | H264Frames:
    """The codec object for ``spec.codec``."""
    return CODEC_CLASSES[spec.codec](spec)

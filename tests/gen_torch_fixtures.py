"""Write the PyTorch weight files that tests/test_torch_weights.c reads.

Run from the repository root with Debian's python3-torch (1.13 was used):
    /usr/bin/python3 tests/gen_torch_fixtures.py
Every tensor value follows a formula that the C test recomputes, listed in state_dict() below.
Rerunning the script reproduces every file byte for byte except tiny_legacy.pth, because
torch's legacy format uses object ids as storage keys. The test does not depend on the keys.

tests/data/torch/
  tiny_zip.pth          torch.save(state_dict), the zip format with pickle protocol 2
  tiny_zip_protocol4.pth  the same with pickle_protocol=4 (FRAME, MEMOIZE, STACK_GLOBAL and
                        SHORT_BINUNICODE opcodes)
  tiny_legacy.pth       torch.save(..., _use_new_zipfile_serialization=False): the legacy
                        format with an OrderedDict state dict, _metadata set through BUILD, and
                        empty OrderedDict backward hooks
  tiny_legacy_none_hooks.pth  the legacy format written by this script's own pickler in the
                        form of pt_inception-2015-12-05-6726825d.pth: a plain dict with sorted
                        keys, None as the backward hooks argument, sys_info reporting a 4-byte
                        long, and the storages' data in the order of their sorted keys
  tiny_zip_deflated.pth tiny_zip.pth with every member recompressed with deflate by zipfile,
                        which torch.save never does, for the reader's deflate path
  list.pth              torch.save([1, 2, 3]): a pickle that is not a state dict
  nested.pth            torch.save({"state_dict": state_dict, "epoch": 3}): a training
                        checkpoint rather than a state dict
tests/data/inception/records.txt
                        name, dtype, shape, stride and storage offset of each of the 566 records
                        in the truncated Inception weights file, read with Python's pickle
tests/data/inception/conv1a_weight.txt
                        the 864 values of Conv2d_1a_3x3.conv.weight in logical (O, I, H, W)
                        order, gathered from the raw bytes with NumPy and the record's strides
"""
import collections
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch
import torch.nn as nn

OUT = os.path.join("tests", "data", "torch")
INCEPTION = os.path.join("tests", "data", "inception", "pt_inception-2015-12-05-6726825d.truncated.pth")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(6, 5)


def state_dict():
    """Return an OrderedDict with _metadata, as Module.state_dict() does, holding these tensors:

    conv.weight  float32 (4, 3, 3, 3) = o*1000 + i*100 + h*10 + w, a permuted view of an
                 (H, W, I, O) tensor, so its strides are (1, 4, 36, 12) as in the Inception file
    bn.weight    float32 (4,) = i + 0.5
    bn.bias      float32 (4,) = -i
    bn.running_mean  float32 (4,) = 1 + i   \\ views at offsets 1 and 5 of one shared
    bn.running_var   float32 (4,) = 5 + i   /  10-element storage holding 0..9
    bn.num_batches_tracked  int64 () = 7
    fc.weight    float32 (5, 6) = c*5 + r at row r, column c: a transposed view, strides (1, 5)
    fc.bias      float64 (5,) = 0.25 * i
    half         float16 (4,) = i - 2
    bfloat       bfloat16 (3,) = 2 * i
    scalar       float32 () = 3.25
    empty        float32 (0, 3)
    """
    sd = Tiny().state_dict()
    o, i, h, w = torch.meshgrid(torch.arange(4), torch.arange(3), torch.arange(3), torch.arange(3), indexing="ij")
    oihw = (o * 1000 + i * 100 + h * 10 + w).float()
    sd["conv.weight"] = oihw.permute(2, 3, 1, 0).contiguous().permute(3, 2, 0, 1)
    assert sd["conv.weight"].stride() == (1, 4, 36, 12)
    sd["bn.weight"] = torch.arange(4).float() + 0.5
    sd["bn.bias"] = -torch.arange(4).float()
    shared = torch.arange(10).float()
    sd["bn.running_mean"] = shared[1:5]
    sd["bn.running_var"] = shared[5:9]
    sd["bn.num_batches_tracked"] = torch.tensor(7)
    sd["fc.weight"] = torch.arange(30).float().reshape(6, 5).t()
    assert sd["fc.weight"].stride() == (1, 5)
    sd["fc.bias"] = torch.arange(5).double() * 0.25
    sd["half"] = (torch.arange(4) - 2).half()
    sd["bfloat"] = (torch.arange(3) * 2).bfloat16()
    sd["scalar"] = torch.tensor(3.25)
    sd["empty"] = torch.zeros(0, 3)
    assert hasattr(sd, "_metadata")
    return sd


def storage_type(storage):
    """Return the legacy storage class (torch.FloatStorage and so on), which pickles as a GLOBAL."""
    return getattr(torch, storage.pickle_storage_type())


class NoneHooksPickler(pickle.Pickler):
    """Pickles tensors as _rebuild_tensor_v2 calls with None as the hooks argument, as in the
    Inception weights file, and storages as persistent ids whose keys sort in another order
    than the records use them."""

    def __init__(self, file):
        super().__init__(file, protocol=2)
        self.storages = {}  # data_ptr -> (key, storage)

    def persistent_id(self, obj):
        if not isinstance(obj, torch.storage.TypedStorage):
            return None
        key = self.storages.setdefault(obj.data_ptr(), (str(900000 - 7 * len(self.storages)), obj))[0]
        return ("storage", storage_type(obj), key, "cpu", obj.size(), None)

    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor):
            args = (obj.storage(), obj.storage_offset(), tuple(obj.size()), obj.stride(), False, None)
            return torch._utils._rebuild_tensor_v2, args
        return NotImplemented


def save_legacy_none_hooks(sd, path):
    plain = {name: sd[name] for name in sorted(sd)}
    body = io.BytesIO()
    pickler = NoneHooksPickler(body)
    pickler.dump(plain)
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
        f.write(body.getvalue())
        ordered = sorted(pickler.storages.values(), key=lambda entry: entry[0])
        pickle.dump([key for key, _ in ordered], f, protocol=2)
        for _, storage in ordered:
            data = torch.empty(0, dtype=storage.dtype).set_(storage).view(torch.uint8).numpy().tobytes()
            f.write(struct.pack("<q", storage.size()))
            f.write(data)


def check_loads(path, sd):
    loaded = torch.load(path)
    assert list(loaded) == list(sd) or sorted(loaded) == sorted(sd), path
    for name, tensor in sd.items():
        assert loaded[name].dtype == tensor.dtype, (path, name)
        assert loaded[name].shape == tensor.shape, (path, name)
        assert torch.equal(loaded[name], tensor), (path, name)


class RecordingUnpickler(pickle.Unpickler):
    """Reads the Inception record pickle without torch: storages become their keys and
    _rebuild_tensor_v2 calls become tuples of their arguments."""

    def persistent_load(self, pid):
        _, storage_class, key, _, numel, _ = pid
        return (storage_class, key, numel)

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *rest: ("tensor", storage, offset, size, stride)
        if module == "torch" and name.endswith("Storage"):
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")


def write_inception_records(path):
    dtypes = {"FloatStorage": "float32", "LongStorage": "int64"}
    with open(INCEPTION, "rb") as f:
        for _ in range(3):  # magic number, protocol version, sys_info
            pickle.load(f)
        records = RecordingUnpickler(f).load()
    with open(path, "w") as out:
        out.write("# name dtype shape stride storage_offset, from tests/gen_torch_fixtures.py\n")
        for name, (_, (storage_class, _, _), offset, size, stride) in records.items():
            shape = ",".join(map(str, size)) or "-"
            strides = ",".join(map(str, stride)) or "-"
            out.write(f"{name} {dtypes[storage_class]} {shape} {strides} {offset}\n")
    print("wrote", path, len(records), "records")
    return records


def recompress(source, target):
    with zipfile.ZipFile(source) as z_in, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z_out:
        for info in z_in.infolist():
            name = info.filename.replace("tiny_zip/", "tiny_zip_deflated/")
            z_out.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), z_in.read(info.filename),
                           compress_type=zipfile.ZIP_DEFLATED)


def write_conv1a_values(records, path):
    """Gather the first conv weight from the raw file bytes with the record's strides."""
    _, (_, key, numel), offset, size, stride = records["Conv2d_1a_3x3.conv.weight"]
    element_sizes = {}
    for _, (storage_class, storage_key, _), _, _, _ in records.values():
        element_sizes[storage_key] = {"FloatStorage": 4, "LongStorage": 8}[storage_class]
    with open(INCEPTION, "rb") as f:
        data = f.read()
        f.seek(0)
        for _ in range(3):  # magic number, protocol version, sys_info
            pickle.load(f)
        RecordingUnpickler(f).load()
        keys = pickle.load(f)
        position = f.tell()

    # After the key list, each storage is its int64 element count followed by its data.
    for k in keys:
        if k == key:
            break
        count = struct.unpack_from("<q", data, position)[0]
        position += 8 + count * element_sizes[k]
    raw = np.frombuffer(data, dtype="<f4", count=numel, offset=position + 8)
    values = np.lib.stride_tricks.as_strided(raw[offset:], shape=size, strides=[4 * s for s in stride])
    with open(path, "w") as out:
        out.write("# Conv2d_1a_3x3.conv.weight in (O, I, H, W) order, from tests/gen_torch_fixtures.py\n")
        for v in values.reshape(-1):
            out.write(f"{v:.9g}\n")
    print("wrote", path)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    sd = state_dict()
    torch.save(sd, os.path.join(OUT, "tiny_zip.pth"))
    torch.save(sd, os.path.join(OUT, "tiny_zip_protocol4.pth"), pickle_protocol=4)
    torch.save(sd, os.path.join(OUT, "tiny_legacy.pth"), _use_new_zipfile_serialization=False)
    save_legacy_none_hooks(sd, os.path.join(OUT, "tiny_legacy_none_hooks.pth"))
    for name in ("tiny_zip.pth", "tiny_zip_protocol4.pth", "tiny_legacy.pth", "tiny_legacy_none_hooks.pth"):
        check_loads(os.path.join(OUT, name), sd)
        print("wrote", os.path.join(OUT, name))
    recompress(os.path.join(OUT, "tiny_zip.pth"), os.path.join(OUT, "tiny_zip_deflated.pth"))
    torch.save([1, 2, 3], os.path.join(OUT, "list.pth"))
    torch.save({"state_dict": sd, "epoch": 3}, os.path.join(OUT, "nested.pth"))

    if not os.path.exists(INCEPTION):
        sys.exit(f"{INCEPTION} is missing: run scripts/make-truncated-inception.sh first")
    records = write_inception_records(os.path.join("tests", "data", "inception", "records.txt"))
    write_conv1a_values(records, os.path.join("tests", "data", "inception", "conv1a_weight.txt"))


if __name__ == "__main__":
    main()

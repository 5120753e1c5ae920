#include "object_file.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include <arrow/buffer.h>
#include <arrow/util/future.h>

namespace skyhook {
namespace {
// cls_cxx_read takes int offsets and lengths; large ranges are read in pieces.
constexpr int64_t kMaxPiece = 64LL << 20;
}  // namespace

ObjectFile::ObjectFile(cls_method_context_t hctx, int64_t size, arrow::MemoryPool* pool)
    : hctx_(hctx), size_(size), pool_(pool), owner_(std::this_thread::get_id()) {}

arrow::Status ObjectFile::Close() {
  closed_ = true;
  return arrow::Status::OK();
}

arrow::Result<int64_t> ObjectFile::Tell() const {
  if (closed_) return arrow::Status::Invalid("object file is closed");
  return position_;
}

arrow::Status ObjectFile::Seek(int64_t position) {
  if (closed_) return arrow::Status::Invalid("object file is closed");
  if (position < 0) return arrow::Status::Invalid("negative seek position");
  position_ = position;
  return arrow::Status::OK();
}

arrow::Result<int64_t> ObjectFile::GetSize() { return size_; }

arrow::Result<int64_t> ObjectFile::ReadAt(int64_t position, int64_t nbytes,
                                          bool allow_short_read, void* out) {
  if (closed_) return arrow::Status::Invalid("object file is closed");
  if (std::this_thread::get_id() != owner_) {
    return arrow::Status::IOError("object read from a thread other than the method's");
  }
  if (position < 0 || nbytes < 0) return arrow::Status::Invalid("negative read range");
  const int64_t wanted = std::min(nbytes, std::max<int64_t>(0, size_ - position));
  if (wanted < nbytes && !allow_short_read) {
    return arrow::Status::IOError("read of ", nbytes, " bytes at ", position,
                                  " runs past the object's end (", size_, " bytes)");
  }
  const auto key = std::make_pair(position, wanted);
  if (const auto hit = remembered_.find(key); hit != remembered_.end()) {
    std::memcpy(out, hit->second.data(), hit->second.size());
    return static_cast<int64_t>(hit->second.size());
  }
  int64_t done = 0;
  while (done < wanted) {
    const int64_t piece = std::min(kMaxPiece, wanted - done);
    if (position + done > INT_MAX) {
      return arrow::Status::IOError("object offset ", position + done, " beyond 2 GiB");
    }
    ceph::bufferlist bl;
    const int rc = cls_cxx_read(hctx_, static_cast<int>(position + done),
                                static_cast<int>(piece), &bl);
    if (rc < 0) return arrow::Status::IOError("cls_cxx_read failed with errno ", -rc);
    const int64_t got = std::min<int64_t>(bl.length(), piece);
    if (got == 0) break;
    bl.begin().copy(static_cast<unsigned>(got), static_cast<char*>(out) + done);
    done += got;
    bytes_read_ += got;
    if (got < piece) break;
  }
  if (done < nbytes && !allow_short_read) {
    return arrow::Status::IOError("object shorter than its stat size");
  }
  if (remember_) {
    const auto* bytes = static_cast<const uint8_t*>(out);
    remembered_.emplace(key, std::vector<uint8_t>(bytes, bytes + done));
  }
  return done;
}

arrow::Result<int64_t> ObjectFile::ReadAt(int64_t position, int64_t nbytes, void* out) {
  return ReadAt(position, nbytes, /*allow_short_read=*/true, out);
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ObjectFile::ReadAt(int64_t position,
                                                                 int64_t nbytes,
                                                                 bool allow_short_read) {
  if (position < 0 || nbytes < 0) return arrow::Status::Invalid("negative read range");
  const int64_t capacity = std::min(nbytes, std::max<int64_t>(0, size_ - position));
  ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::AllocateResizableBuffer(capacity, pool_));
  ARROW_ASSIGN_OR_RAISE(auto got,
                        ReadAt(position, nbytes, allow_short_read, buffer->mutable_data()));
  ARROW_RETURN_NOT_OK(buffer->Resize(got, /*shrink_to_fit=*/false));
  return std::shared_ptr<arrow::Buffer>(std::move(buffer));
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ObjectFile::ReadAt(int64_t position,
                                                                 int64_t nbytes) {
  return ReadAt(position, nbytes, /*allow_short_read=*/true);
}

arrow::Result<int64_t> ObjectFile::Read(int64_t nbytes, void* out) {
  ARROW_ASSIGN_OR_RAISE(auto got, ReadAt(position_, nbytes, true, out));
  position_ += got;
  return got;
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ObjectFile::Read(int64_t nbytes) {
  ARROW_ASSIGN_OR_RAISE(auto buffer, ReadAt(position_, nbytes, true));
  position_ += buffer->size();
  return buffer;
}

arrow::Future<std::shared_ptr<arrow::Buffer>> ObjectFile::ReadAsync(
    const arrow::io::IOContext&, int64_t position, int64_t nbytes, bool allow_short_read) {
  return arrow::Future<std::shared_ptr<arrow::Buffer>>::MakeFinished(
      ReadAt(position, nbytes, allow_short_read));
}

arrow::Future<std::shared_ptr<arrow::Buffer>> ObjectFile::ReadAsync(
    const arrow::io::IOContext& ctx, int64_t position, int64_t nbytes) {
  return ReadAsync(ctx, position, nbytes, /*allow_short_read=*/true);
}

}  // namespace skyhook

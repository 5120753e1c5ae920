// An arrow::io::RandomAccessFile over the object the class method runs on. Arrow's IPC file
// reader asks it only for the footer, the batch metadata and the buffers of the included
// fields, so a projection reads only those byte ranges; every byte is counted.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>
#include <thread>

#include <arrow/io/interfaces.h>
#include <rados/objclass.h>

namespace skyhook {

class ObjectFile : public arrow::io::RandomAccessFile {
 public:
  ObjectFile(cls_method_context_t hctx, int64_t size, arrow::MemoryPool* pool);

  int64_t bytes_read() const { return bytes_read_; }

  // While on, reads are kept; a later read of exactly the same range is served from memory
  // and not counted again (Arrow reads the footer anew when a reader is reopened).
  void set_remember_reads(bool on) { remember_ = on; }

  arrow::Status Close() override;
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override;
  arrow::Status Seek(int64_t position) override;
  arrow::Result<int64_t> GetSize() override;

  arrow::Result<int64_t> Read(int64_t nbytes, void* out) override;
  arrow::Result<std::shared_ptr<arrow::Buffer>> Read(int64_t nbytes) override;

  arrow::Result<int64_t> ReadAt(int64_t position, int64_t nbytes, bool allow_short_read,
                                void* out) override;
  arrow::Result<int64_t> ReadAt(int64_t position, int64_t nbytes, void* out) override;
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadAt(int64_t position, int64_t nbytes,
                                                       bool allow_short_read) override;
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadAt(int64_t position,
                                                       int64_t nbytes) override;

  // Arrow would hand these to its IO thread pool; the object may only be read from the
  // thread running the method, so they complete synchronously here.
  arrow::Future<std::shared_ptr<arrow::Buffer>> ReadAsync(const arrow::io::IOContext& ctx,
                                                          int64_t position, int64_t nbytes,
                                                          bool allow_short_read) override;
  arrow::Future<std::shared_ptr<arrow::Buffer>> ReadAsync(const arrow::io::IOContext& ctx,
                                                          int64_t position,
                                                          int64_t nbytes) override;

 private:
  cls_method_context_t hctx_;
  int64_t size_;
  arrow::MemoryPool* pool_;
  std::thread::id owner_;
  int64_t position_ = 0;
  int64_t bytes_read_ = 0;
  bool closed_ = false;
  bool remember_ = false;
  std::map<std::pair<int64_t, int64_t>, std::vector<uint8_t>> remembered_;
};

}  // namespace skyhook

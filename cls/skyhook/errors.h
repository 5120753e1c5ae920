// Errors raised inside the class and the errno each one returns to the client.
//
//   EINVAL  (22)  the request is malformed (bad magic, truncation, limits, unknown function)
//   ENODATA (61)  the request names a column the object does not have
//   EDOM    (33)  the query does not apply to the data (types, list lengths, reductions)
//   EIO     (5)   the object is not a readable Arrow IPC file
//   ENOMEM  (12)  an allocation failed
//
// Code below throws ClsError; the method boundary (cls_skyhook.cc) turns it into a negative
// errno and logs the reason, so no C++ exception ever reaches the OSD.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <utility>

#include <arrow/result.h>
#include <arrow/status.h>

namespace skyhook {

class ClsError : public std::runtime_error {
 public:
  ClsError(int code, const std::string& reason) : std::runtime_error(reason), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

[[noreturn]] inline void Fail(int code, const std::string& reason) {
  throw ClsError(code, reason);
}

// An Arrow failure becomes `code`, except running out of memory, which stays ENOMEM.
inline void Check(const arrow::Status& status, int code, const std::string& context) {
  if (status.ok()) return;
  Fail(status.IsOutOfMemory() ? ENOMEM : code, context + ": " + status.ToString());
}

template <typename T>
T Unwrap(arrow::Result<T> result, int code, const std::string& context) {
  Check(result.status(), code, context);
  return std::move(result).ValueOrDie();
}

}  // namespace skyhook

// A list (jagged) value in canonical form, as skyhook_dask/objclass/scan.py keeps it: offsets
// from 0, null lists of length 0, and `values` holding only the elements of non-null lists.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/api.h>

namespace skyhook {

struct Jagged {
  std::vector<int64_t> offsets;          // one more than the number of events
  std::shared_ptr<arrow::Array> values;  // the elements of the non-null lists, in order
  std::vector<bool> valid;               // per event; empty when no list is null

  int64_t length() const { return static_cast<int64_t>(offsets.size()) - 1; }
  bool IsValid(int64_t i) const { return valid.empty() || valid[i]; }
};

// The canonical form of a list or large_list array; lists of nested values are EDOM.
Jagged JaggedFromArrow(const arrow::Array& array, const std::string& name,
                       arrow::MemoryPool* pool);

// A list reduction (any, all, count, len, sum, min, max) of every event's list.
std::shared_ptr<arrow::Array> ReduceJagged(const std::string& function, const Jagged& jagged,
                                           const std::string& text, arrow::MemoryPool* pool);

}  // namespace skyhook

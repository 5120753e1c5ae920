// Evaluation of expression trees over the columns of one object, with the semantics of
// skyhook_dask/query/expr.py as skyhook_dask/objclass/scan.py fixes them: Arrow compute
// functions called by name, lifted over list (jagged) operands, per-event operands broadcast
// into lists, and the per-event list reductions.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "jagged.h"
#include "request.h"

namespace skyhook {

using ColumnMap = std::unordered_map<std::string, std::shared_ptr<arrow::Array>>;

// What an expression gives: one value per event (`flat`: an array or a scalar), or a list of
// values per event (`jagged`).
struct Value {
  arrow::Datum flat;
  std::shared_ptr<const Jagged> jagged;
};

class Evaluator {
 public:
  Evaluator(const ColumnMap& columns, int64_t rows, arrow::compute::ExecContext* ctx)
      : columns_(columns), rows_(rows), ctx_(ctx) {}

  // Throws ClsError: ENODATA for an unknown column, EDOM when the expression does not apply
  // to the columns' types or list lengths.
  Value Evaluate(const Node& node);

  // The rows where `predicate` is true (null counts as false), as a boolean mask.
  std::shared_ptr<arrow::Array> Mask(const Node& predicate);

  // The values `expr` gives on these rows, lists flattened (null lists skipped): aggregates.
  std::shared_ptr<arrow::Array> FlatValues(const Node& expr);

  // One value per row: an array, or a large_list array when `expr` gives lists (a derived
  // column, typed as the Python reference types it).
  std::shared_ptr<arrow::Array> Values(const Node& expr);

 private:
  Value Column(const std::string& name);
  std::shared_ptr<arrow::Array> Element(const Jagged& jagged, int64_t index);
  std::shared_ptr<const Jagged> Filter(const Jagged& values, const Jagged& mask, const Node& node);
  Value Elementwise(const std::string& function, std::vector<Value> args, const Node& node);
  arrow::Datum CallArrow(const std::string& function, const std::vector<arrow::Datum>& args,
                         const Node& node);
  std::shared_ptr<arrow::Array> ToArray(const arrow::Datum& datum, int64_t length);

  const ColumnMap& columns_;
  int64_t rows_;
  arrow::compute::ExecContext* ctx_;
  std::map<std::string, Value> cache_;  // columns already turned into values
};

// The expression as text, for messages: less(MET_pt, 30.0).
std::string ExprText(const Node& node);

}  // namespace skyhook

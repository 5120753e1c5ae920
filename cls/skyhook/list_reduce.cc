// Per-event reductions of list values, as loops over the canonical offsets, with the null,
// empty-list and NaN rules of skyhook_dask/query/expr.py and objclass/scan.py:
//   any/all   list<bool> -> bool; empty -> false/true; null elements are false (any) or
//             ignored (all)
//   count     true elements of a list<bool> -> int64
//   len       elements of any list -> int64
//   sum       -> int64 (signed, bool; wraps), uint64 (unsigned) or float64; null elements
//             ignored; empty -> 0
//   min/max   value type; null elements ignored; no values -> null; any NaN -> NaN
// A null list gives null for every reduction.
#include <cmath>
#include <type_traits>

#include <arrow/util/bitmap_ops.h>

#include "errors.h"
#include "jagged.h"

namespace skyhook {
namespace {

template <typename Builder>
std::shared_ptr<arrow::Array> Finish(Builder& builder) {
  return Unwrap(builder.Finish(), ENOMEM, "building a list reduction");
}

// Calls visit(T{}) for the Arrow type of a bool or numeric id; false for other ids.
template <typename Visit>
bool VisitNumeric(arrow::Type::type id, Visit&& visit) {
  switch (id) {
    case arrow::Type::BOOL: visit(arrow::BooleanType{}); return true;
    case arrow::Type::INT8: visit(arrow::Int8Type{}); return true;
    case arrow::Type::INT16: visit(arrow::Int16Type{}); return true;
    case arrow::Type::INT32: visit(arrow::Int32Type{}); return true;
    case arrow::Type::INT64: visit(arrow::Int64Type{}); return true;
    case arrow::Type::UINT8: visit(arrow::UInt8Type{}); return true;
    case arrow::Type::UINT16: visit(arrow::UInt16Type{}); return true;
    case arrow::Type::UINT32: visit(arrow::UInt32Type{}); return true;
    case arrow::Type::UINT64: visit(arrow::UInt64Type{}); return true;
    case arrow::Type::FLOAT: visit(arrow::FloatType{}); return true;
    case arrow::Type::DOUBLE: visit(arrow::DoubleType{}); return true;
    default: return false;
  }
}

// numpy's pairwise summation (add.reduce over a contiguous float64 run), reproduced so float
// sums agree with the reference to the last bit.
double PairwiseSum(const double* a, int64_t n) {
  constexpr int64_t kBlock = 128;
  if (n < 8) {
    double res = -0.;  // numpy starts from -0.0 so that a sum of -0.0 stays -0.0
    for (int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= kBlock) {
    double r[8];
    for (int k = 0; k < 8; ++k) r[k] = a[k];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (int k = 0; k < 8; ++k) r[k] += a[i + k];
    }
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return PairwiseSum(a, n2) + PairwiseSum(a + n2, n - n2);
}

// What numpy's add.reduceat gives for one list: the first element, plus the rest pairwise.
double ListSum(const double* a, int64_t n) {
  return n == 0 ? 0. : a[0] + PairwiseSum(a + 1, n - 1);
}

std::shared_ptr<arrow::Array> AnyAllCount(const std::string& function, const Jagged& j,
                                          arrow::MemoryPool* pool) {
  const auto& values = static_cast<const arrow::BooleanArray&>(*j.values);
  const bool is_count = function == "count";
  arrow::BooleanBuilder flags(pool);
  arrow::Int64Builder counts(pool);
  Check(is_count ? counts.Reserve(j.length()) : flags.Reserve(j.length()), ENOMEM, function);
  if (j.valid.empty() && values.null_count() == 0) {  // no null: count each list's set bits
    const uint8_t* bits = values.values()->data();
    for (int64_t i = 0; i < j.length(); ++i) {
      const int64_t begin = j.offsets[i], size = j.offsets[i + 1] - begin;
      const int64_t trues = arrow::internal::CountSetBits(bits, values.offset() + begin, size);
      if (is_count) {
        counts.UnsafeAppend(trues);
      } else {
        flags.UnsafeAppend(function == "any" ? trues > 0 : trues == size);
      }
    }
    return is_count ? Finish(counts) : Finish(flags);
  }
  for (int64_t i = 0; i < j.length(); ++i) {
    if (!j.IsValid(i)) {
      is_count ? counts.UnsafeAppendNull() : flags.UnsafeAppendNull();
      continue;
    }
    int64_t trues = 0, falses = 0;
    for (int64_t e = j.offsets[i]; e < j.offsets[i + 1]; ++e) {
      if (values.IsNull(e)) continue;
      values.Value(e) ? ++trues : ++falses;
    }
    if (is_count) {
      counts.UnsafeAppend(trues);
    } else {
      flags.UnsafeAppend(function == "any" ? trues > 0 : falses == 0);
    }
  }
  return is_count ? Finish(counts) : Finish(flags);
}

std::shared_ptr<arrow::Array> Lengths(const Jagged& j, arrow::MemoryPool* pool) {
  arrow::Int64Builder out(pool);
  Check(out.Reserve(j.length()), ENOMEM, "len");
  for (int64_t i = 0; i < j.length(); ++i) {
    if (j.IsValid(i)) {
      out.UnsafeAppend(j.offsets[i + 1] - j.offsets[i]);
    } else {
      out.UnsafeAppendNull();
    }
  }
  return Finish(out);
}

template <typename T>
std::shared_ptr<arrow::Array> Sums(const Jagged& j, arrow::MemoryPool* pool) {
  using CType = typename arrow::TypeTraits<T>::CType;
  using ArrayType = typename arrow::TypeTraits<T>::ArrayType;
  constexpr bool kFloat = std::is_floating_point_v<CType>;
  constexpr bool kUnsigned = std::is_unsigned_v<CType> && !std::is_same_v<CType, bool>;
  using OutType = std::conditional_t<kFloat, arrow::DoubleType,
                                     std::conditional_t<kUnsigned, arrow::UInt64Type,
                                                        arrow::Int64Type>>;
  const auto& values = static_cast<const ArrayType&>(*j.values);
  arrow::NumericBuilder<OutType> out(pool);
  Check(out.Reserve(j.length()), ENOMEM, "sum");
  std::vector<double> run;  // one list's elements as float64, nulls as 0
  for (int64_t i = 0; i < j.length(); ++i) {
    if (!j.IsValid(i)) {
      out.UnsafeAppendNull();
      continue;
    }
    const int64_t begin = j.offsets[i], end = j.offsets[i + 1];
    if constexpr (kFloat) {
      run.assign(end - begin, 0.);
      for (int64_t e = begin; e < end; ++e) {
        if (values.IsValid(e)) run[e - begin] = static_cast<double>(values.Value(e));
      }
      out.UnsafeAppend(ListSum(run.data(), end - begin));
    } else {
      uint64_t acc = 0;  // unsigned, so overflow wraps as numpy's int64/uint64 do
      for (int64_t e = begin; e < end; ++e) {
        if (values.IsValid(e)) acc += static_cast<uint64_t>(static_cast<int64_t>(values.Value(e)));
      }
      out.UnsafeAppend(static_cast<typename OutType::c_type>(acc));
    }
  }
  return Finish(out);
}

template <typename T>
std::shared_ptr<arrow::Array> Extremes(bool is_min, const Jagged& j, arrow::MemoryPool* pool) {
  using CType = typename arrow::TypeTraits<T>::CType;
  using ArrayType = typename arrow::TypeTraits<T>::ArrayType;
  using BuilderType = typename arrow::TypeTraits<T>::BuilderType;
  const auto& values = static_cast<const ArrayType&>(*j.values);
  BuilderType out(pool);
  Check(out.Reserve(j.length()), ENOMEM, is_min ? "min" : "max");
  for (int64_t i = 0; i < j.length(); ++i) {
    bool seen = false;
    CType best{};
    if (j.IsValid(i)) {
      for (int64_t e = j.offsets[i]; e < j.offsets[i + 1]; ++e) {
        if (values.IsNull(e)) continue;
        const CType v = values.Value(e);
        if constexpr (std::is_floating_point_v<CType>) {
          if (std::isnan(v)) {  // NaN wins, as numpy's minimum/maximum propagate it
            best = v;
            seen = true;
            break;
          }
        }
        if (!seen || (is_min ? v < best : best < v)) best = v;
        seen = true;
      }
    }
    if (seen) {
      out.UnsafeAppend(best);
    } else {
      out.UnsafeAppendNull();
    }
  }
  return Finish(out);
}

}  // namespace

std::shared_ptr<arrow::Array> ReduceJagged(const std::string& function, const Jagged& jagged,
                                           const std::string& text, arrow::MemoryPool* pool) {
  const auto& value_type = *jagged.values->type();
  if (function == "len") return Lengths(jagged, pool);
  if (function == "any" || function == "all" || function == "count") {
    if (value_type.id() != arrow::Type::BOOL) {
      Fail(EDOM, function + "() needs a list of booleans, " + text + " is list<" +
                     value_type.ToString() + ">");
    }
    return AnyAllCount(function, jagged, pool);
  }
  std::shared_ptr<arrow::Array> result;
  const bool numeric = VisitNumeric(value_type.id(), [&](auto type) {
    using T = decltype(type);
    if (function == "sum") {
      result = Sums<T>(jagged, pool);
    } else {
      result = Extremes<T>(function == "min", jagged, pool);
    }
  });
  if (!numeric) {
    Fail(EDOM, function + "() needs a list of numbers, " + text + " is list<" +
                   value_type.ToString() + ">");
  }
  return result;
}

Jagged JaggedFromArrow(const arrow::Array& array, const std::string& name,
                       arrow::MemoryPool* pool) {
  const auto& list_type = static_cast<const arrow::BaseListType&>(*array.type());
  if (arrow::is_nested(list_type.value_type()->id())) {
    Fail(EDOM, "column " + name + " is a list of " + list_type.value_type()->ToString() +
                   ": not supported");
  }
  Jagged j;
  const int64_t n = array.length();
  j.offsets.assign(n + 1, 0);
  auto canonical = [&](const auto& list) {
    const auto* raw = list.raw_value_offsets();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t length = list.IsNull(i) ? 0 : raw[i + 1] - raw[i];
      j.offsets[i + 1] = j.offsets[i] + length;
    }
    if (list.null_count() > 0) {
      j.valid.resize(n);
      for (int64_t i = 0; i < n; ++i) j.valid[i] = list.IsValid(i);
    }
    // Flatten drops the elements behind null lists and honours the array's slice.
    j.values = Unwrap(list.Flatten(pool), ENOMEM, "flattening column " + name);
  };
  if (array.type_id() == arrow::Type::LIST) {
    canonical(static_cast<const arrow::ListArray&>(array));
  } else {
    canonical(static_cast<const arrow::LargeListArray&>(array));
  }
  return j;
}

}  // namespace skyhook

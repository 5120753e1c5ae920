#include "evaluate.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include <arrow/util/bitmap_ops.h>

#include "errors.h"

namespace skyhook {
namespace {

int Arity(const std::string& function) {
  static const std::unordered_map<std::string, int> arity = {
      {"less", 2},  {"less_equal", 2}, {"greater", 2},  {"greater_equal", 2}, {"equal", 2},
      {"not_equal", 2}, {"add", 2},     {"subtract", 2}, {"multiply", 2},      {"divide", 2},
      {"and_kleene", 2}, {"or_kleene", 2}, {"invert", 1}, {"abs", 1},         {"negate", 1},
      {"any", 1},   {"all", 1},        {"count", 1},    {"len", 1},           {"sum", 1},
      {"min", 1},   {"max", 1},
      // math (unchecked Arrow kernels: NaN out of domain, as numpy)
      {"sqrt", 1},  {"exp", 1},        {"ln", 1},       {"log10", 1},         {"sin", 1},
      {"cos", 1},   {"tan", 1},        {"asin", 1},     {"acos", 1},          {"atan", 1},
      {"sinh", 1},  {"cosh", 1},       {"tanh", 1},     {"floor", 1},         {"ceil", 1},
      {"atan2", 2}, {"power", 2},  {"list_element", 2}, {"list_filter", 2}, {"coalesce", 2},
      {"to_float64", 1}};
  const auto it = arity.find(function);
  return it == arity.end() ? -1 : it->second;
}

const char* LiteralTypeName(LiteralType type) {
  static const char* names[] = {"bool",   "int8",   "int16",  "int32", "int64", "uint8",
                                "uint16", "uint32", "uint64", "float", "double"};
  return names[static_cast<int>(type) - 1];
}

std::shared_ptr<arrow::Scalar> MakeLiteral(const Node& node) {
  const uint64_t bits = node.literal_bits;
  const auto s = static_cast<int64_t>(bits);
  // Integers travel as 8 bytes; one outside its named type is not a valid literal.
  auto check = [&](bool in_range) {
    if (!in_range) {
      Fail(EDOM, "literal " + ExprText(node) + " is not a valid " +
                     LiteralTypeName(node.literal_type));
    }
  };
  switch (node.literal_type) {
    case LiteralType::kBool: return std::make_shared<arrow::BooleanScalar>(bits != 0);
    case LiteralType::kInt8:
      check(s >= INT8_MIN && s <= INT8_MAX);
      return std::make_shared<arrow::Int8Scalar>(static_cast<int8_t>(s));
    case LiteralType::kInt16:
      check(s >= INT16_MIN && s <= INT16_MAX);
      return std::make_shared<arrow::Int16Scalar>(static_cast<int16_t>(s));
    case LiteralType::kInt32:
      check(s >= INT32_MIN && s <= INT32_MAX);
      return std::make_shared<arrow::Int32Scalar>(static_cast<int32_t>(s));
    case LiteralType::kInt64: return std::make_shared<arrow::Int64Scalar>(s);
    case LiteralType::kUInt8:
      check(bits <= UINT8_MAX);
      return std::make_shared<arrow::UInt8Scalar>(static_cast<uint8_t>(bits));
    case LiteralType::kUInt16:
      check(bits <= UINT16_MAX);
      return std::make_shared<arrow::UInt16Scalar>(static_cast<uint16_t>(bits));
    case LiteralType::kUInt32:
      check(bits <= UINT32_MAX);
      return std::make_shared<arrow::UInt32Scalar>(static_cast<uint32_t>(bits));
    case LiteralType::kUInt64: return std::make_shared<arrow::UInt64Scalar>(bits);
    case LiteralType::kFloat: {
      float f;
      const auto raw = static_cast<uint32_t>(bits);
      std::memcpy(&f, &raw, sizeof f);
      return std::make_shared<arrow::FloatScalar>(f);
    }
    case LiteralType::kDouble: {
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return std::make_shared<arrow::DoubleScalar>(d);
    }
  }
  Fail(EINVAL, "literal of unknown type");
}

std::string Types(const std::vector<arrow::Datum>& args) {
  std::string text;
  for (size_t i = 0; i < args.size(); ++i) text += (i ? ", " : "") + args[i].type()->ToString();
  return text;
}

// Null (and empty) the lists of events where `valid` is false.
Jagged Restrict(const Jagged& j, const std::vector<bool>& valid, arrow::compute::ExecContext* ctx) {
  Jagged out;
  out.valid = valid;
  out.offsets.assign(j.offsets.size(), 0);
  bool dropped = false;
  for (int64_t i = 0; i < j.length(); ++i) {
    const int64_t length = valid[i] ? j.offsets[i + 1] - j.offsets[i] : 0;
    dropped = dropped || (!valid[i] && j.offsets[i + 1] > j.offsets[i]);
    out.offsets[i + 1] = out.offsets[i] + length;
  }
  if (!dropped) {
    out.values = j.values;
    return out;
  }
  arrow::BooleanBuilder keep(ctx->memory_pool());
  Check(keep.Reserve(j.values->length()), ENOMEM, "restricting a list");
  for (int64_t i = 0; i < j.length(); ++i) {
    for (int64_t e = j.offsets[i]; e < j.offsets[i + 1]; ++e) keep.UnsafeAppend(valid[i]);
  }
  const auto mask = Unwrap(keep.Finish(), ENOMEM, "restricting a list");
  out.values = Unwrap(arrow::compute::Filter(j.values, mask,
                                             arrow::compute::FilterOptions::Defaults(), ctx),
                      ENOMEM, "restricting a list")
                   .make_array();
  return out;
}

}  // namespace

std::string ExprText(const Node& node) {
  switch (node.kind) {
    case NodeKind::kColumn: return node.name;
    case NodeKind::kLiteral: {
      std::ostringstream text;
      const auto lit = node.literal_type;
      if (lit == LiteralType::kBool) return node.literal_bits ? "True" : "False";
      if (lit == LiteralType::kFloat || lit == LiteralType::kDouble) {
        double d;
        if (lit == LiteralType::kFloat) {
          float f;
          const auto raw = static_cast<uint32_t>(node.literal_bits);
          std::memcpy(&f, &raw, sizeof f);
          d = f;
        } else {
          std::memcpy(&d, &node.literal_bits, sizeof d);
        }
        text << d;
      } else if (lit >= LiteralType::kUInt8) {
        text << node.literal_bits;
      } else {
        text << static_cast<int64_t>(node.literal_bits);
      }
      return text.str();
    }
    case NodeKind::kCall: {
      std::string text = node.name + "(";
      for (size_t i = 0; i < node.args.size(); ++i) {
        text += (i ? ", " : "") + ExprText(node.args[i]);
      }
      return text + ")";
    }
  }
  return "?";
}

// x[i] per event: element i of the event's list (negative: from the end), null where the list
// is null or too short -- a missing value.
std::shared_ptr<arrow::Array> Evaluator::Element(const Jagged& jagged, int64_t index) {
  arrow::Int64Builder positions(ctx_->memory_pool());
  Check(positions.Reserve(jagged.length()), EIO, "out of memory");
  for (int64_t row = 0; row < jagged.length(); ++row) {
    const int64_t length = jagged.offsets[row + 1] - jagged.offsets[row];
    // Compare before adding: an index near the int64 limits must not overflow.
    const bool present = jagged.IsValid(row) && (index >= 0 ? index < length : index >= -length);
    if (present) {
      positions.UnsafeAppend(jagged.offsets[row] + (index >= 0 ? index : length + index));
    } else {
      positions.UnsafeAppendNull();
    }
  }
  std::shared_ptr<arrow::Array> where;
  Check(positions.Finish(&where), EIO, "out of memory");
  return Unwrap(arrow::compute::Take(jagged.values, where, arrow::compute::TakeOptions::Defaults(),
                                     ctx_),
                EDOM, "list_element: cannot take elements")
      .make_array();
}

// x[mask] per event: the elements where the mask is true (null counts as false). An event whose
// list or mask is null is null; the mask must have as many elements as the values in every
// other event.
std::shared_ptr<const Jagged> Evaluator::Filter(const Jagged& values, const Jagged& mask,
                                                const Node& node) {
  if (mask.values->type_id() != arrow::Type::BOOL) {
    Fail(EDOM, ExprText(node) + ": the mask " + ExprText(node.args[1]) +
                   " is not a list of booleans");
  }
  const auto& bits = static_cast<const arrow::BooleanArray&>(*mask.values);
  auto out = std::make_shared<Jagged>();
  const int64_t rows = values.length();
  out->offsets.reserve(rows + 1);
  out->offsets.push_back(0);
  if (values.valid.empty() && mask.valid.empty() && bits.null_count() == 0 &&
      values.offsets == mask.offsets) {  // the common case: Arrow's filter of the elements
    const uint8_t* data = bits.values()->data();
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t begin = mask.offsets[row], length = mask.offsets[row + 1] - begin;
      out->offsets.push_back(out->offsets.back() +
                             arrow::internal::CountSetBits(data, bits.offset() + begin, length));
    }
    out->values = Unwrap(arrow::compute::Filter(values.values, mask.values,
                                                arrow::compute::FilterOptions::Defaults(), ctx_),
                         EDOM, "list_filter: cannot filter elements")
                      .make_array();
    return out;
  }
  if (!values.valid.empty() || !mask.valid.empty()) out->valid.assign(rows, true);
  arrow::Int64Builder take(ctx_->memory_pool());
  Check(take.Reserve(values.offsets.back()), ENOMEM, "list_filter");
  for (int64_t row = 0; row < rows; ++row) {
    int64_t kept = 0;
    if (values.IsValid(row) && mask.IsValid(row)) {
      const int64_t length = values.offsets[row + 1] - values.offsets[row];
      const int64_t mask_length = mask.offsets[row + 1] - mask.offsets[row];
      if (length != mask_length) {
        Fail(EDOM, ExprText(node) + ": the mask " + ExprText(node.args[1]) + " and the values " +
                       ExprText(node.args[0]) + " differ in length in row " +
                       std::to_string(row) + " (" + std::to_string(mask_length) + " vs " +
                       std::to_string(length) + "); a mask must come from the same " +
                       "collection as the values");
      }
      for (int64_t k = 0; k < length; ++k) {
        const int64_t at = mask.offsets[row] + k;
        if (bits.IsValid(at) && bits.Value(at)) {
          take.UnsafeAppend(values.offsets[row] + k);
          ++kept;
        }
      }
    } else {
      out->valid[row] = false;
    }
    out->offsets.push_back(out->offsets.back() + kept);
  }
  std::shared_ptr<arrow::Array> where;
  Check(take.Finish(&where), EIO, "out of memory");
  out->values = Unwrap(arrow::compute::Take(values.values, where,
                                            arrow::compute::TakeOptions::Defaults(), ctx_),
                       EDOM, "list_filter: cannot take elements")
                    .make_array();
  return out;
}

Value Evaluator::Column(const std::string& name) {
  if (const auto hit = cache_.find(name); hit != cache_.end()) return hit->second;
  const auto it = columns_.find(name);
  if (it == columns_.end()) Fail(ENODATA, "unknown column '" + name + "'");
  Value value;
  const auto id = it->second->type_id();
  if (id == arrow::Type::LIST || id == arrow::Type::LARGE_LIST) {
    value.jagged =
        std::make_shared<const Jagged>(JaggedFromArrow(*it->second, name, ctx_->memory_pool()));
  } else {
    value.flat = arrow::Datum(it->second);
  }
  cache_.emplace(name, value);
  return value;
}

Value Evaluator::Evaluate(const Node& node) {
  switch (node.kind) {
    case NodeKind::kColumn: return Column(node.name);
    case NodeKind::kLiteral: return Value{arrow::Datum(MakeLiteral(node)), nullptr};
    case NodeKind::kCall: {
      const int arity = Arity(node.name);
      if (arity < 0) Fail(EINVAL, "unknown function '" + node.name + "'");
      if (static_cast<int>(node.args.size()) != arity) {
        Fail(EDOM, node.name + " takes " + std::to_string(arity) + " argument(s), " +
                       std::to_string(node.args.size()) + " given in " + ExprText(node));
      }
      std::vector<Value> args;
      args.reserve(node.args.size());
      for (const auto& arg : node.args) args.push_back(Evaluate(arg));
      if (node.name == "list_element") {
        if (!args[0].jagged) {
          Fail(EDOM, ExprText(node) + ": " + ExprText(node.args[0]) +
                         " is not a list (jagged) value");
        }
        const auto index = static_cast<int64_t>(node.args[1].literal_bits);
        return Value{arrow::Datum(Element(*args[0].jagged, index)), nullptr};
      }
      if (node.name == "list_filter") {
        if (!args[0].jagged || !args[1].jagged) {
          Fail(EDOM, ExprText(node) + ": the values and the mask must both be lists per event");
        }
        return Value{arrow::Datum(), Filter(*args[0].jagged, *args[1].jagged, node)};
      }
      if (IsListReduction(node.name)) {
        if (!args[0].jagged) {
          Fail(EDOM, node.name + "() needs a list (jagged) operand, not " +
                         ExprText(node.args[0]));
        }
        return Value{arrow::Datum(ReduceJagged(node.name, *args[0].jagged,
                                               ExprText(node.args[0]), ctx_->memory_pool())),
                     nullptr};
      }
      return Elementwise(node.name, std::move(args), node);
    }
  }
  Fail(EINVAL, "expression node of unknown kind");
}

// Over list operands an elementwise function works on their values and keeps their offsets.
// An event is null where any list operand or any per-event operand is null; its elements are
// dropped before the list lengths are compared. Per-event operands are repeated once per
// element of their event's list.
Value Evaluator::Elementwise(const std::string& function, std::vector<Value> args,
                             const Node& node) {
  if (function == "divide" || function == "to_float64") {
    // In float64, by an unsafe cast: large integers round, as numpy's astype does.
    const auto to_double = arrow::compute::CastOptions::Unsafe(arrow::float64());
    for (auto& arg : args) {
      if (arg.jagged) {
        auto copy = std::make_shared<Jagged>(*arg.jagged);
        copy->values = Unwrap(arrow::compute::Cast(copy->values, to_double, ctx_), EDOM,
                              function + ": cannot convert list<" +
                                  copy->values->type()->ToString() + "> to double")
                           .make_array();
        arg.jagged = std::move(copy);
      } else {
        arg.flat = Unwrap(arrow::compute::Cast(arg.flat, to_double, ctx_), EDOM,
                          function + ": cannot convert " + arg.flat.type()->ToString() +
                              " to double");
      }
    }
    if (function == "to_float64") return args[0];
  }
  std::vector<const Jagged*> lists;
  for (const auto& arg : args) {
    if (arg.jagged) lists.push_back(arg.jagged.get());
  }
  if (lists.empty()) {
    std::vector<arrow::Datum> flat;
    for (const auto& arg : args) flat.push_back(arg.flat);
    return Value{CallArrow(function, flat, node), nullptr};
  }

  // Common validity of the list operands and the per-event operands.
  std::vector<bool> valid;
  auto narrow = [&](auto&& is_valid) {
    if (valid.empty()) valid.assign(rows_, true);
    for (int64_t i = 0; i < rows_; ++i) valid[i] = valid[i] && is_valid(i);
  };
  for (const auto& arg : args) {
    if (arg.jagged && !arg.jagged->valid.empty()) {
      narrow([&](int64_t i) { return static_cast<bool>(arg.jagged->valid[i]); });
    } else if (!arg.jagged && arg.flat.is_array() && arg.flat.null_count() > 0) {
      const auto array = arg.flat.make_array();
      narrow([&](int64_t i) { return array->IsValid(i); });
    }
  }
  std::vector<Jagged> restricted;
  restricted.reserve(lists.size());
  for (const auto* list : lists) {
    restricted.push_back(valid.empty() ? *list : Restrict(*list, valid, ctx_));
  }
  const auto& offsets = restricted.front().offsets;
  for (size_t k = 1; k < restricted.size(); ++k) {
    if (restricted[k].offsets == offsets) continue;
    int64_t event = 0;
    while (restricted[k].offsets[event + 1] - restricted[k].offsets[event] ==
           offsets[event + 1] - offsets[event]) {
      ++event;
    }
    Fail(EDOM, ExprText(node) + ": list operands differ in length in row " +
                   std::to_string(event) + " (" +
                   std::to_string(offsets[event + 1] - offsets[event]) + " vs " +
                   std::to_string(restricted[k].offsets[event + 1] -
                                  restricted[k].offsets[event]) +
                   ")");
  }

  std::shared_ptr<arrow::Array> parents;  // the event of every element
  std::vector<arrow::Datum> operands;
  size_t next_list = 0;
  for (const auto& arg : args) {
    if (arg.jagged) {
      operands.emplace_back(restricted[next_list++].values);
    } else if (arg.flat.is_scalar()) {
      operands.push_back(arg.flat);
    } else {
      if (!parents) {
        arrow::Int64Builder builder(ctx_->memory_pool());
        Check(builder.Reserve(offsets.back()), ENOMEM, "list parents");
        for (int64_t i = 0; i + 1 < static_cast<int64_t>(offsets.size()); ++i) {
          for (int64_t e = offsets[i]; e < offsets[i + 1]; ++e) builder.UnsafeAppend(i);
        }
        parents = Unwrap(builder.Finish(), ENOMEM, "list parents");
      }
      operands.push_back(Unwrap(arrow::compute::Take(arg.flat, parents,
                                                     arrow::compute::TakeOptions::Defaults(),
                                                     ctx_),
                                ENOMEM, "repeating a per-event operand"));
    }
  }
  auto result = std::make_shared<Jagged>();
  result->offsets = offsets;
  result->valid = std::move(valid);
  result->values = ToArray(CallArrow(function, operands, node), offsets.back());
  return Value{arrow::Datum(), std::move(result)};
}

arrow::Datum Evaluator::CallArrow(const std::string& function,
                                  const std::vector<arrow::Datum>& args, const Node& node) {
  auto result = arrow::compute::CallFunction(function, args, nullptr, ctx_);
  Check(result.status(), EDOM, "cannot evaluate " + ExprText(node) + " on (" + Types(args) + ")");
  arrow::Datum out = std::move(result).ValueOrDie();
  if (out.is_chunked_array()) out = arrow::Datum(ToArray(out, out.length()));
  return out;
}

std::shared_ptr<arrow::Array> Evaluator::ToArray(const arrow::Datum& datum, int64_t length) {
  auto* pool = ctx_->memory_pool();
  if (datum.is_array()) return datum.make_array();
  if (datum.is_scalar()) {
    return Unwrap(arrow::MakeArrayFromScalar(*datum.scalar(), length, pool), ENOMEM,
                  "repeating a scalar");
  }
  if (datum.is_chunked_array()) {
    const auto& chunks = datum.chunked_array()->chunks();
    if (chunks.empty()) return Unwrap(arrow::MakeEmptyArray(datum.type(), pool), ENOMEM, "empty");
    return Unwrap(arrow::Concatenate(chunks, pool), ENOMEM, "concatenating");
  }
  Fail(EDOM, "expression gives neither an array nor a scalar");
}

std::shared_ptr<arrow::Array> Evaluator::Mask(const Node& predicate) {
  const auto value = Evaluate(predicate);
  if (value.jagged) {
    Fail(EDOM, "predicate " + ExprText(predicate) +
                   " is a list per row, not a boolean per row; reduce it with any(), all(), "
                   "count(), ...");
  }
  if (value.flat.type()->id() != arrow::Type::BOOL) {
    Fail(EDOM, "predicate " + ExprText(predicate) + " is of type " +
                   value.flat.type()->ToString() + ", not a boolean per row");
  }
  return ToArray(value.flat, rows_);
}

std::shared_ptr<arrow::Array> Evaluator::FlatValues(const Node& expr) {
  const auto value = Evaluate(expr);
  if (value.jagged) return value.jagged->values;
  return ToArray(value.flat, rows_);
}

std::shared_ptr<arrow::Array> Evaluator::Values(const Node& expr) {
  const auto value = Evaluate(expr);
  if (!value.jagged) return ToArray(value.flat, rows_);
  const auto& jagged = *value.jagged;
  auto* pool = ctx_->memory_pool();
  arrow::Int64Builder offsets(pool);
  Check(offsets.AppendValues(jagged.offsets), ENOMEM, "offsets of " + ExprText(expr));
  const auto offset_array = Unwrap(offsets.Finish(), ENOMEM, "offsets of " + ExprText(expr));
  std::shared_ptr<arrow::Buffer> validity;
  int64_t nulls = 0;
  if (!jagged.valid.empty()) {
    arrow::TypedBufferBuilder<bool> bits(pool);
    for (const bool valid : jagged.valid) {
      Check(bits.Append(valid), ENOMEM, "validity of " + ExprText(expr));
      nulls += valid ? 0 : 1;
    }
    validity = Unwrap(bits.Finish(), ENOMEM, "validity of " + ExprText(expr));
  }
  return std::make_shared<arrow::LargeListArray>(
      arrow::large_list(jagged.values->type()), jagged.length(), offset_array->data()->buffers[1],
      jagged.values, nulls > 0 ? validity : nullptr, nulls);
}

}  // namespace skyhook

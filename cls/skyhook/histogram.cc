#include "histogram.h"

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "errors.h"

namespace skyhook {
namespace {

// One value of the histogram (an axis or the weight) as entries: per row, or per element.
struct Entries {
  std::shared_ptr<arrow::DoubleArray> values;  // per row (flat) or every element (list)
  const arrow::LargeListArray* list = nullptr;  // set for a list value
  std::shared_ptr<arrow::Array> keep;           // keeps `list` alive
  std::string text;
};

std::shared_ptr<arrow::DoubleArray> AsDoubles(const std::shared_ptr<arrow::Array>& array,
                                              const std::string& text,
                                              arrow::compute::ExecContext* ctx) {
  if (arrow::is_nested(array->type_id())) {
    Fail(EDOM, "the histogram's value " + text + " is not a number");
  }
  const auto options = arrow::compute::CastOptions::Unsafe(arrow::float64());
  auto cast = Unwrap(arrow::compute::Cast(array, options, ctx), EDOM,
                     "the histogram's value " + text + " is not a number");
  return std::static_pointer_cast<arrow::DoubleArray>(cast.make_array());
}

// The cell of a regular axis: boost-histogram's formula, the cell chosen by arithmetic rather
// than jumps, so that a loop over many values runs without mispredicted branches.
struct RegularCell {
  double low, width, bins;
  int64_t overflow;

  explicit RegularCell(const HistAxis& axis)
      : low(axis.low), width(axis.high - axis.low), bins(axis.bins), overflow(axis.size() + 1) {}

  int64_t operator()(double x) const {
    const double z = (x - low) / width;
    const int64_t inside = (z >= 0) & (z < 1);  // NaN: neither inside nor below: overflow
    const int64_t below = z < 0;
    double clamped = z > 0.0 ? z : 0.0;       // NaN and negatives become 0, and values past the
    clamped = clamped < 1.0 ? clamped : 1.0;  // range 1, so the cast below stays defined
    const int64_t bin = static_cast<int64_t>(clamped * bins) + 1;
    return inside * bin + (1 - inside) * (1 - below) * overflow;
  }
};

int64_t Cell(const HistAxis& axis, double x) {
  if (!axis.edges.empty()) {
    if (x == axis.edges.back()) return axis.size() + 1;
    // Edges not above x; NaN compares false with every edge and lands in overflow.
    return std::upper_bound(axis.edges.begin(), axis.edges.end(), x) - axis.edges.begin();
  }
  return RegularCell(axis)(x);
}

[[noreturn]] void LengthsDiffer(const Entries& a, const Entries& b, int64_t row, int64_t na,
                                int64_t nb) {
  Fail(EDOM, "the histogram's values " + a.text + " and " + b.text + " differ in length in row " +
                 std::to_string(row) + " (" + std::to_string(na) + " vs " + std::to_string(nb) +
                 ")");
}

// The entries of values without any null, copied in runs (no per-entry checks); false, and
// nothing gathered, when some value has nulls.
bool GatherWithoutNulls(const std::vector<Entries>& values, int64_t rows,
                        std::vector<std::vector<double>>& entries) {
  const Entries* first = nullptr;
  for (const auto& e : values) {
    if (e.values->null_count() > 0 || (e.list && e.list->null_count() > 0)) return false;
    if (e.list && !first) first = &e;
  }
  for (const auto& e : values) {
    if (!e.list || &e == first) continue;
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t na = first->list->value_length(row), nb = e.list->value_length(row);
      if (na != nb) LengthsDiffer(*first, e, row, na, nb);
    }
  }
  for (size_t v = 0; v < values.size(); ++v) {
    const auto& e = values[v];
    const double* raw = e.values->raw_values();
    auto& out = entries[v];
    if (e.list) {
      out.assign(raw + e.list->value_offset(0), raw + e.list->value_offset(rows));
    } else if (first) {  // a value per event, repeated for each element of its event's list
      out.reserve(first->list->value_offset(rows) - first->list->value_offset(0));
      for (int64_t row = 0; row < rows; ++row) {
        out.insert(out.end(), first->list->value_length(row), raw[row]);
      }
    } else {
      out.assign(raw, raw + rows);
    }
  }
  return true;
}

// A value without any null counted straight from its own numbers (each converted to double as
// the cast would, so the cells are the same), with no copy; false for other values.
bool CountDirectly(const HistAxis& axis, const Entries& e, std::vector<int64_t>& counts) {
  std::shared_ptr<arrow::Array> numbers = e.keep;
  if (e.list) {
    if (e.list->null_count() > 0) return false;
    const int64_t begin = e.list->value_offset(0), end = e.list->value_offset(e.list->length());
    numbers = e.list->values()->Slice(begin, end - begin);
  }
  if (numbers->null_count() > 0) return false;
  const auto count = [&](const auto* raw) {
    const int64_t n = numbers->length();
    if (!axis.edges.empty()) {
      for (int64_t i = 0; i < n; ++i) ++counts[Cell(axis, static_cast<double>(raw[i]))];
      return;
    }
    // A block of cells at a time: the divisions then overlap, apart from the counting.
    constexpr int64_t kBlock = 1024;
    int64_t cells[kBlock];
    const RegularCell regular(axis);
    for (int64_t start = 0; start < n; start += kBlock) {
      const int64_t m = std::min(kBlock, n - start);
      for (int64_t i = 0; i < m; ++i) cells[i] = regular(static_cast<double>(raw[start + i]));
      for (int64_t i = 0; i < m; ++i) ++counts[cells[i]];
    }
  };
  switch (numbers->type_id()) {
    case arrow::Type::FLOAT: count(numbers->data()->GetValues<float>(1)); return true;
    case arrow::Type::DOUBLE: count(numbers->data()->GetValues<double>(1)); return true;
    case arrow::Type::INT32: count(numbers->data()->GetValues<int32_t>(1)); return true;
    case arrow::Type::INT64: count(numbers->data()->GetValues<int64_t>(1)); return true;
    case arrow::Type::UINT32: count(numbers->data()->GetValues<uint32_t>(1)); return true;
    case arrow::Type::UINT64: count(numbers->data()->GetValues<uint64_t>(1)); return true;
    default: return false;  // the others go through the general path's cast
  }
}

std::shared_ptr<arrow::Table> CountsTable(const std::vector<int64_t>& counts,
                                          arrow::MemoryPool* pool) {
  arrow::Int64Builder builder(pool);
  Check(builder.AppendValues(counts), ENOMEM, "histogram counts");
  const auto array = Unwrap(builder.Finish(), ENOMEM, "histogram counts");
  return arrow::Table::Make(arrow::schema({arrow::field("count", arrow::int64())}), {array});
}

}  // namespace

std::shared_ptr<arrow::Table> FillHistogram(const HistSpec& spec, const ColumnMap& columns,
                                            int64_t rows, arrow::compute::ExecContext* ctx) {
  Evaluator evaluator(columns, rows, ctx);
  std::vector<Entries> values;
  std::vector<const Node*> nodes;
  for (const auto& axis : spec.axes) nodes.push_back(&axis.value);
  if (spec.weight) nodes.push_back(&*spec.weight);
  for (const auto* node : nodes) {
    Entries e;
    e.text = ExprText(*node);
    e.keep = evaluator.Values(*node);
    if (e.keep->type_id() == arrow::Type::LARGE_LIST) {
      e.list = static_cast<const arrow::LargeListArray*>(e.keep.get());
    }
    values.push_back(std::move(e));
  }
  auto* pool = ctx->memory_pool();
  if (nodes.size() == 1) {  // one axis, no weight
    std::vector<int64_t> counts(spec.axes[0].size() + 2, 0);
    if (CountDirectly(spec.axes[0], values[0], counts)) return CountsTable(counts, pool);
  }
  for (auto& e : values) e.values = AsDoubles(e.list ? e.list->values() : e.keep, e.text, ctx);
  std::vector<int64_t> shape;
  int64_t cells = 1;
  for (const auto& axis : spec.axes) {
    shape.push_back(axis.size() + 2);
    cells *= shape.back();
  }
  // Three passes, so that the division in each bin lookup runs in a tight loop the CPU can
  // pipeline: gather the entries' values, then their cells, then count (in entry order).
  std::vector<std::vector<double>> entries(values.size());
  if (!GatherWithoutNulls(values, rows, entries)) {
    for (int64_t row = 0; row < rows; ++row) {
      bool valid = true;
      int64_t length = -1;  // -1: every value is one per row
      const Entries* first_list = nullptr;
      for (const auto& e : values) {
        const bool null = e.list ? e.list->IsNull(row) : e.values->IsNull(row);
        valid = valid && !null;
      }
      if (!valid) continue;
      for (const auto& e : values) {
        if (!e.list) continue;
        const int64_t n = e.list->value_length(row);
        if (first_list && n != length) LengthsDiffer(*first_list, e, row, length, n);
        first_list = first_list ? first_list : &e;
        length = n;
      }
      for (int64_t k = 0; k < std::max<int64_t>(length, 1) && length != 0; ++k) {
        bool present = true;
        for (const auto& e : values) {
          const int64_t at = e.list ? e.list->value_offset(row) + k : row;
          present = present && e.values->IsValid(at);
        }
        if (!present) continue;
        for (size_t v = 0; v < values.size(); ++v) {
          const auto& e = values[v];
          entries[v].push_back(e.values->Value(e.list ? e.list->value_offset(row) + k : row));
        }
      }
    }
  }
  const size_t naxes = spec.axes.size(), n = entries[0].size();
  std::vector<int64_t> cell(n, 0);
  for (size_t a = 0; a < naxes; ++a) {
    const auto& axis = spec.axes[a];
    const double* x = entries[a].data();
    for (size_t i = 0; i < n; ++i) cell[i] = cell[i] * shape[a] + Cell(axis, x[i]);
  }
  std::vector<int64_t> counts(spec.weight ? 0 : cells, 0);
  std::vector<double> sumw(spec.weight ? cells : 0, 0.0), sumw2(sumw.size(), 0.0);
  if (spec.weight) {
    const double* w = entries[naxes].data();
    for (size_t i = 0; i < n; ++i) {
      sumw[cell[i]] += w[i];
      sumw2[cell[i]] += w[i] * w[i];
    }
  } else {
    for (size_t i = 0; i < n; ++i) ++counts[cell[i]];
  }
  if (!spec.weight) return CountsTable(counts, pool);
  arrow::DoubleBuilder w(pool), w2(pool);
  Check(w.AppendValues(sumw), ENOMEM, "histogram sums");
  Check(w2.AppendValues(sumw2), ENOMEM, "histogram sums");
  const auto a = Unwrap(w.Finish(), ENOMEM, "histogram sums");
  const auto b = Unwrap(w2.Finish(), ENOMEM, "histogram sums");
  return arrow::Table::Make(arrow::schema({arrow::field("sumw", arrow::float64()),
                                           arrow::field("sumw2", arrow::float64())}),
                            {a, b});
}

}  // namespace skyhook

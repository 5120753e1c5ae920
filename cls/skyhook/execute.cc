#include "execute.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/api.h>
#include <arrow/util/compression.h>

#include "errors.h"
#include "evaluate.h"
#include "histogram.h"
#include "object_file.h"

namespace skyhook {
namespace {

using Clock = std::chrono::steady_clock;

struct Metrics {
  int64_t rows_in = 0;
  int64_t rows_out = 0;
  int64_t bytes_read = 0;
  int64_t object_size = 0;
  int64_t elapsed_ns = 0;
};

// The needed columns of one object, read through an ObjectFile.
struct LoadedColumns {
  std::shared_ptr<arrow::Schema> schema;  // the object's full schema
  ColumnMap columns;
  int64_t rows = 0;
};

std::shared_ptr<arrow::ipc::RecordBatchFileReader> OpenReader(
    const std::shared_ptr<ObjectFile>& file, const std::vector<int>& fields,
    arrow::MemoryPool* pool) {
  auto options = arrow::ipc::IpcReadOptions::Defaults();
  options.memory_pool = pool;
  options.use_threads = false;  // never start Arrow worker threads inside the OSD
  options.included_fields = fields;
  return Unwrap(arrow::ipc::RecordBatchFileReader::Open(file, options), EIO,
                "the object is not a readable Arrow IPC file");
}

// Reads the columns in `names` (all when `all`); a name the object lacks is ENODATA.
LoadedColumns Load(const std::shared_ptr<ObjectFile>& file, const std::vector<std::string>& names,
                   bool all, arrow::MemoryPool* pool) {
  LoadedColumns loaded;
  file->set_remember_reads(true);  // the footer is read again when reopened with a subset
  auto reader = OpenReader(file, {}, pool);
  file->set_remember_reads(false);
  loaded.schema = reader->schema();
  std::vector<int> fields;
  if (!all) {
    for (const auto& name : names) {
      const auto found = loaded.schema->GetAllFieldIndices(name);
      if (found.empty()) Fail(ENODATA, "unknown column '" + name + "'");
      if (found.size() > 1) Fail(EIO, "the object has several columns named '" + name + "'");
      fields.push_back(found[0]);
    }
    std::sort(fields.begin(), fields.end());
    // Column 0 (event_id) stands in when no column is needed: it gives the row count.
    if (fields.empty() && loaded.schema->num_fields() > 0) fields.push_back(0);
    if (static_cast<int>(fields.size()) < loaded.schema->num_fields()) {
      reader = OpenReader(file, fields, pool);
    }
  }
  const auto read_schema = reader->schema();
  std::vector<arrow::ArrayVector> chunks(read_schema->num_fields());
  for (int b = 0; b < reader->num_record_batches(); ++b) {
    const auto batch = Unwrap(reader->ReadRecordBatch(b), EIO,
                              "record batch " + std::to_string(b) + " of the object");
    // Full validation: corrupt offsets must become an error here, not a crash in a kernel.
    Check(batch->ValidateFull(), EIO, "record batch " + std::to_string(b) + " of the object");
    loaded.rows += batch->num_rows();
    for (int f = 0; f < batch->num_columns(); ++f) chunks[f].push_back(batch->column(f));
  }
  for (int f = 0; f < read_schema->num_fields(); ++f) {
    const auto& field = read_schema->field(f);
    std::shared_ptr<arrow::Array> column =
        chunks[f].empty()
            ? Unwrap(arrow::MakeEmptyArray(field->type(), pool), ENOMEM, field->name())
        : chunks[f].size() == 1 ? chunks[f][0]
                                : Unwrap(arrow::Concatenate(chunks[f], pool), ENOMEM,
                                         "concatenating column " + field->name());
    loaded.columns.emplace(field->name(), std::move(column));
  }
  return loaded;
}

std::shared_ptr<arrow::Array> Filtered(const std::shared_ptr<arrow::Array>& column,
                                       const std::shared_ptr<arrow::Array>& mask,
                                       arrow::compute::ExecContext* ctx) {
  if (!mask) return column;
  const auto result = Unwrap(arrow::compute::Filter(column, mask,
                                                    arrow::compute::FilterOptions::Defaults(), ctx),
                             EDOM, "filtering");
  return result.make_array();
}

// The selected rows of the `used` columns only: a column the predicate alone reads (often a
// list, costly to filter) is not filtered.
ColumnMap SelectedRows(const LoadedColumns& in, const std::vector<std::string>& used,
                       const std::shared_ptr<arrow::Array>& mask,
                       arrow::compute::ExecContext* ctx) {
  ColumnMap columns;
  for (const auto& name : used) columns.emplace(name, Filtered(in.columns.at(name), mask, ctx));
  return columns;
}

std::shared_ptr<arrow::Array> OneRow(const std::shared_ptr<arrow::Scalar>& scalar,
                                     arrow::MemoryPool* pool) {
  return Unwrap(arrow::MakeArrayFromScalar(*scalar, 1, pool), ENOMEM, "result row");
}

std::shared_ptr<arrow::Scalar> CallAggregate(const std::string& function,
                                             const std::shared_ptr<arrow::Array>& values,
                                             arrow::compute::ExecContext* ctx) {
  const auto result = Unwrap(arrow::compute::CallFunction(function, {values}, nullptr, ctx),
                             EDOM, function + " of " + values->type()->ToString());
  return result.scalar();
}

arrow::Result<std::shared_ptr<arrow::Buffer>> Serialize(
    const std::shared_ptr<arrow::Table>& table, Compression compression,
    arrow::MemoryPool* pool) {
  auto options = arrow::ipc::IpcWriteOptions::Defaults();
  options.memory_pool = pool;
  options.use_threads = false;
  if (compression != Compression::kNone) {
    ARROW_ASSIGN_OR_RAISE(options.codec, arrow::util::Codec::Create(
                                             compression == Compression::kLz4
                                                 ? arrow::Compression::LZ4_FRAME
                                                 : arrow::Compression::ZSTD));
  }
  ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create(4096, pool));
  ARROW_ASSIGN_OR_RAISE(auto writer,
                        arrow::ipc::MakeStreamWriter(sink, table->schema(), options));
  ARROW_RETURN_NOT_OK(writer->WriteTable(*table));
  ARROW_RETURN_NOT_OK(writer->Close());
  return sink->Finish();
}

// `base` with the metrics (and `extra`) added under skyhook.* keys.
std::shared_ptr<arrow::KeyValueMetadata> WithMetrics(
    const std::shared_ptr<const arrow::KeyValueMetadata>& base, const Metrics& m,
    const std::vector<std::pair<std::string, int64_t>>& extra = {}) {
  auto meta = base ? base->Copy() : std::make_shared<arrow::KeyValueMetadata>();
  auto put = [&](const std::string& key, int64_t value) {
    Check(meta->Set("skyhook." + key, std::to_string(value)), EIO, "result metadata");
  };
  for (const auto& [key, value] : extra) put(key, value);
  put("rows_in", m.rows_in);
  put("rows_out", m.rows_out);
  put("bytes_read", m.bytes_read);
  put("object_size", m.object_size);
  put("elapsed_ns", m.elapsed_ns);
  return meta;
}

struct Output {
  std::shared_ptr<arrow::Schema> schema;
  arrow::ArrayVector arrays;
  int64_t rows = 0;
};

Output Scan(const Request& req, const LoadedColumns& in, const std::shared_ptr<arrow::Array>& mask,
            int64_t selected, arrow::compute::ExecContext* ctx) {
  Output out;
  std::vector<std::string> names = req.columns;
  if (names.empty()) names = in.schema->field_names();
  // The selected rows of the columns the output needs (stored or read by a derived one).
  std::vector<std::string> used;
  for (const auto& name : names) {
    if (FindDerived(req, name) == nullptr) used.push_back(name);
  }
  for (const auto& derived : req.derived) CollectColumns(derived.expr, used);
  const auto columns = SelectedRows(in, used, mask, ctx);  // the evaluator keeps a reference
  Evaluator evaluator(columns, selected, ctx);
  arrow::FieldVector fields;
  for (const auto& name : names) {
    if (const auto* derived = FindDerived(req, name)) {
      out.arrays.push_back(evaluator.Values(derived->expr));
      fields.push_back(arrow::field(name, out.arrays.back()->type()));
      continue;
    }
    fields.push_back(in.schema->GetFieldByName(name));
    out.arrays.push_back(columns.at(name));
  }
  out.rows = selected;
  out.schema = arrow::schema(fields, in.schema->metadata());
  return out;
}

Output Aggregate(const Request& req, const LoadedColumns& in,
                 const std::shared_ptr<arrow::Array>& mask, int64_t selected,
                 arrow::compute::ExecContext* ctx) {
  auto* pool = ctx->memory_pool();
  std::vector<std::string> used;
  for (const auto& agg : req.aggregates) {
    if (agg.expr) CollectColumns(*agg.expr, used);
  }
  const auto columns = SelectedRows(in, used, mask, ctx);  // the evaluator keeps a reference
  Evaluator evaluator(columns, selected, ctx);
  Output out;
  arrow::FieldVector fields;
  for (size_t i = 0; i < req.aggregates.size(); ++i) {
    const auto& agg = req.aggregates[i];
    std::shared_ptr<arrow::Scalar> value, count;
    if (!agg.expr) {
      value = count = std::make_shared<arrow::Int64Scalar>(selected);
    } else {
      const auto values = evaluator.FlatValues(*agg.expr);
      count = std::make_shared<arrow::Int64Scalar>(values->length() - values->null_count());
      switch (agg.op) {
        case AggregateOp::kCount: value = count; break;
        case AggregateOp::kSum:
        case AggregateOp::kMean: value = CallAggregate("sum", values, ctx); break;
        case AggregateOp::kMin: value = CallAggregate("min", values, ctx); break;
        case AggregateOp::kMax: value = CallAggregate("max", values, ctx); break;
      }
    }
    const auto name = std::to_string(i);
    fields.push_back(arrow::field(name, value->type));
    out.arrays.push_back(OneRow(value, pool));
    fields.push_back(arrow::field(name + ".n", arrow::int64()));
    out.arrays.push_back(OneRow(count, pool));
  }
  out.schema = arrow::schema(fields);
  out.rows = 1;
  return out;
}

Output Hist(const Request& req, const LoadedColumns& in, const std::shared_ptr<arrow::Array>& mask,
            int64_t selected, arrow::compute::ExecContext* ctx) {
  std::vector<std::string> used;
  for (const auto& axis : req.histogram->axes) CollectColumns(axis.value, used);
  if (req.histogram->weight) CollectColumns(*req.histogram->weight, used);
  const auto columns = SelectedRows(in, used, mask, ctx);
  const auto table = FillHistogram(*req.histogram, columns, selected, ctx);
  Output out;
  out.schema = table->schema();
  for (const auto& column : table->columns()) out.arrays.push_back(column->chunk(0));
  out.rows = table->num_rows();
  return out;
}

// A number as a double, or null when the scalar is null or not a number.
std::shared_ptr<arrow::Scalar> AsDouble(const std::shared_ptr<arrow::Scalar>& s) {
  double value = 0;
  bool ok = s->is_valid;
  if (ok) {
    switch (s->type->id()) {
#define SKYHOOK_AS_DOUBLE(ID, TYPE)                                               \
  case arrow::Type::ID:                                                           \
    value = static_cast<double>(static_cast<const arrow::TYPE&>(*s).value);       \
    break;
      SKYHOOK_AS_DOUBLE(INT8, Int8Scalar)
      SKYHOOK_AS_DOUBLE(INT16, Int16Scalar)
      SKYHOOK_AS_DOUBLE(INT32, Int32Scalar)
      SKYHOOK_AS_DOUBLE(INT64, Int64Scalar)
      SKYHOOK_AS_DOUBLE(UINT8, UInt8Scalar)
      SKYHOOK_AS_DOUBLE(UINT16, UInt16Scalar)
      SKYHOOK_AS_DOUBLE(UINT32, UInt32Scalar)
      SKYHOOK_AS_DOUBLE(UINT64, UInt64Scalar)
      SKYHOOK_AS_DOUBLE(FLOAT, FloatScalar)
      SKYHOOK_AS_DOUBLE(DOUBLE, DoubleScalar)
#undef SKYHOOK_AS_DOUBLE
      default:
        ok = false;
    }
  }
  return ok ? std::static_pointer_cast<arrow::Scalar>(std::make_shared<arrow::DoubleScalar>(value))
            : arrow::MakeNullScalar(arrow::float64());
}

Output Stat(const LoadedColumns& in, arrow::compute::ExecContext* ctx) {
  auto* pool = ctx->memory_pool();
  arrow::StringBuilder names(pool), types(pool);
  arrow::Int64Builder nulls(pool);
  arrow::DoubleBuilder mins(pool), maxs(pool);
  for (const auto& field : in.schema->fields()) {
    const auto& column = in.columns.at(field->name());
    Check(names.Append(field->name()), ENOMEM, "stat");
    Check(types.Append(field->type()->ToString()), ENOMEM, "stat");
    Check(nulls.Append(column->null_count()), ENOMEM, "stat");
    auto values = column;  // list columns: their elements, one level down, null lists skipped
    const auto id = column->type_id();
    if (id == arrow::Type::LIST || id == arrow::Type::LARGE_LIST) {
      values = Unwrap(arrow::compute::CallFunction("list_flatten", {column}, nullptr, ctx), EIO,
                      "flattening column " + field->name())
                   .make_array();
    }
    const bool numeric = arrow::is_integer(values->type_id()) ||
                         arrow::is_floating(values->type_id());
    std::shared_ptr<arrow::Scalar> lo = arrow::MakeNullScalar(arrow::float64()), hi = lo;
    if (numeric && values->type_id() != arrow::Type::HALF_FLOAT) {
      const auto extremes = std::static_pointer_cast<arrow::StructScalar>(
          CallAggregate("min_max", values, ctx));
      lo = AsDouble(extremes->value[0]);
      hi = AsDouble(extremes->value[1]);
    }
    Check(mins.AppendScalar(*lo), ENOMEM, "stat");
    Check(maxs.AppendScalar(*hi), ENOMEM, "stat");
  }
  Output out;
  out.schema = arrow::schema({arrow::field("column", arrow::utf8()),
                              arrow::field("type", arrow::utf8()),
                              arrow::field("nulls", arrow::int64()),
                              arrow::field("min", arrow::float64()),
                              arrow::field("max", arrow::float64())});
  for (auto* builder : std::initializer_list<arrow::ArrayBuilder*>{&names, &types, &nulls, &mins,
                                                                  &maxs}) {
    out.arrays.push_back(Unwrap(builder->Finish(), ENOMEM, "stat"));
  }
  out.rows = in.schema->num_fields();
  return out;
}

}  // namespace

std::shared_ptr<arrow::Buffer> Execute(cls_method_context_t hctx, const Request& req,
                                       Method method) {
  const auto started = Clock::now();
  if (method == Method::kAggregate && req.aggregates.empty()) {
    Fail(EINVAL, "an aggregate request must name at least one aggregate");
  }
  if (method == Method::kHist && !req.histogram) {
    Fail(EINVAL, "a hist request must carry a histogram (request version 3)");
  }
  auto* pool = arrow::system_memory_pool();  // the OSD's allocator, not a second one
  arrow::compute::ExecContext ctx(pool);
  ctx.set_use_threads(false);

  uint64_t size = 0;
  time_t mtime = 0;
  const int rc = cls_cxx_stat(hctx, &size, &mtime);
  if (rc < 0) Fail(-rc, "cannot stat the object");
  Metrics metrics;
  metrics.object_size = static_cast<int64_t>(size);
  auto file = std::make_shared<ObjectFile>(hctx, static_cast<int64_t>(size), pool);

  // Every column the request touches: projection, predicate and aggregate expressions.
  std::vector<std::string> needed;
  bool all = method == Method::kStat || (method == Method::kScan && req.columns.empty());
  if (method == Method::kScan) {
    for (const auto& name : req.columns) {
      if (FindDerived(req, name) == nullptr &&
          std::find(needed.begin(), needed.end(), name) == needed.end()) {
        needed.push_back(name);
      }
    }
    for (const auto& derived : req.derived) CollectColumns(derived.expr, needed);
  }
  if (method != Method::kStat && req.predicate) CollectColumns(*req.predicate, needed);
  if (method == Method::kAggregate) {
    for (const auto& agg : req.aggregates) {
      if (agg.expr) CollectColumns(*agg.expr, needed);
    }
  }
  if (method == Method::kHist) {
    for (const auto& axis : req.histogram->axes) CollectColumns(axis.value, needed);
    if (req.histogram->weight) CollectColumns(*req.histogram->weight, needed);
  }
  const auto loaded = Load(file, needed, all, pool);
  metrics.rows_in = loaded.rows;

  std::shared_ptr<arrow::Array> mask;
  int64_t selected = loaded.rows;
  if (method != Method::kStat && req.predicate) {
    Evaluator evaluator(loaded.columns, loaded.rows, &ctx);
    mask = evaluator.Mask(*req.predicate);
    const auto trues = CallAggregate("sum", mask, &ctx);
    selected = trues->is_valid
                   ? static_cast<int64_t>(static_cast<const arrow::UInt64Scalar&>(*trues).value)
                   : 0;
  }
  Output out;
  std::vector<std::pair<std::string, int64_t>> extra;
  switch (method) {
    case Method::kScan: out = Scan(req, loaded, mask, selected, &ctx); break;
    case Method::kAggregate: out = Aggregate(req, loaded, mask, selected, &ctx); break;
    case Method::kHist: out = Hist(req, loaded, mask, selected, &ctx); break;
    case Method::kStat:
      out = Stat(loaded, &ctx);
      extra.emplace_back("rows", loaded.rows);
      selected = loaded.rows;
      break;
  }
  metrics.rows_out = selected;
  metrics.bytes_read = file->bytes_read();
  metrics.elapsed_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count();
  const auto schema = out.schema->WithMetadata(WithMetrics(out.schema->metadata(), metrics, extra));
  const auto table = arrow::Table::Make(schema, out.arrays, out.rows);
  return Unwrap(Serialize(table, req.compression, pool), ENOMEM, "serializing the result");
}

}  // namespace skyhook

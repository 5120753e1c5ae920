// The scan request: the wire format of skyhook_dask/formats/protocol.py, decoded with every limit
// checked. Decoding uses no Arrow and no Ceph so it can be exercised on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace skyhook {

inline constexpr size_t kMaxString = 4096;
inline constexpr int kMaxDepth = 64;
inline constexpr int kMaxNodes = 4096;
inline constexpr int kMaxArgs = 8;

enum class NodeKind : uint8_t { kColumn = 1, kLiteral = 2, kCall = 3 };

// Wire codes of literal types, in the order of expr.LITERAL_TYPES.
enum class LiteralType : uint8_t {
  kBool = 1, kInt8, kInt16, kInt32, kInt64, kUInt8, kUInt16, kUInt32, kUInt64, kFloat, kDouble
};

enum class Compression : uint8_t { kNone = 0, kLz4 = 1, kZstd = 2 };

enum class AggregateOp : uint8_t { kCount = 1, kSum = 2, kMin = 3, kMax = 4, kMean = 5 };

struct Node {
  NodeKind kind = NodeKind::kColumn;
  std::string name;  // column name (kColumn) or function name (kCall)
  LiteralType literal_type = LiteralType::kBool;
  // Literal value: the wire's 8 bytes for integers and double, 4 for float, 1 for bool.
  uint64_t literal_bits = 0;
  std::vector<Node> args;
};

struct AggregateSpec {
  AggregateOp op = AggregateOp::kCount;
  std::optional<Node> expr;  // absent only for count (rows selected)
};

// `expr as name` in a projection (request version 2): a column the scan computes.
struct DerivedColumn {
  std::string name;
  Node expr;
};

// One axis of a histogram (request version 3): `bins` regular bins over [low, high), or the
// increasing `edges` of variable bins (see skyhook_dask/formats/histogram.py).
struct HistAxis {
  Node value;
  uint32_t bins = 0;
  double low = 0, high = 0;
  std::vector<double> edges;

  int64_t size() const { return edges.empty() ? bins : static_cast<int64_t>(edges.size()) - 1; }
};

inline constexpr size_t kMaxAxes = 3;
inline constexpr int64_t kMaxCells = int64_t{1} << 20;  // bounds one result's size

struct HistSpec {
  std::vector<HistAxis> axes;
  std::optional<Node> weight;
};

struct Request {
  Compression compression = Compression::kNone;
  std::vector<std::string> columns;  // empty: every column
  std::optional<Node> predicate;
  std::vector<AggregateSpec> aggregates;
  std::vector<DerivedColumn> derived;  // each named exactly once in `columns`
  std::optional<HistSpec> histogram;   // what the hist method fills
};

// The derived column called `name`, or nullptr when `name` is read from the object.
const DerivedColumn* FindDerived(const Request& req, const std::string& name);

// Decodes a request; throws ClsError(EINVAL) naming the byte at fault.
Request DecodeRequest(const uint8_t* data, size_t size);

// Whether `name` is one of the per-event list reductions (any, all, count, len, sum, min, max).
bool IsListReduction(const std::string& name);

// Column names the node reads, appended to `out` in first-seen order without duplicates.
void CollectColumns(const Node& node, std::vector<std::string>& out);

}  // namespace skyhook

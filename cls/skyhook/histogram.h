// The hist method's filling: entries from the selected rows (one per row, or one per element of
// the list values, per-row values repeated), binned as skyhook_dask/formats/histogram.py bins
// them, counted or summed in entry order as skyhook_dask/objclass/histogram.py does.
#pragma once

#include <cstdint>
#include <memory>

#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "evaluate.h"
#include "request.h"

namespace skyhook {

// One row per cell: "count" (int64), or "sumw" and "sumw2" (float64) when weighted. Throws
// ClsError(EDOM) when list values differ in length in a row or a value is not a number.
std::shared_ptr<arrow::Table> FillHistogram(const HistSpec& spec, const ColumnMap& columns,
                                            int64_t rows, arrow::compute::ExecContext* ctx);

}  // namespace skyhook

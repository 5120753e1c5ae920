// The methods of the class over the object a call runs on: read the needed columns,
// select, project, aggregate or fill a histogram, and serialize the result as an Arrow IPC stream whose schema
// metadata carries the scan's metrics (see skyhook_dask/formats/protocol.py).
#pragma once

#include <memory>

#include <arrow/buffer.h>
#include <rados/objclass.h>

#include "request.h"

namespace skyhook {

enum class Method { kScan, kAggregate, kHist, kStat };

// Runs `method` on the object; throws ClsError on any failure.
std::shared_ptr<arrow::Buffer> Execute(cls_method_context_t hctx, const Request& request,
                                       Method method);

}  // namespace skyhook

// The `skyhook` Ceph object class: select/project/aggregate over objects holding Arrow IPC
// files, inside the OSD. Methods (all read-only):
//
//   scan       request -> Arrow IPC stream of the selected rows' projected columns
//   aggregate  request -> one-row stream: per aggregate i, columns "i" and "i.n"
//   hist       request -> one row per histogram cell: "count", or "sumw" and "sumw2"
//   stat       (empty) -> one row per column: column, type, nulls, min, max
//
// Request and result formats: skyhook_dask/formats/protocol.py. Errors: see errors.h.
#include <exception>
#include <mutex>
#include <new>
#include <string>

#include <arrow/compute/initialize.h>
#include <rados/objclass.h>

#include "errors.h"
#include "execute.h"
#include "request.h"

CLS_VER(1, 0)
CLS_NAME(skyhook)

namespace skyhook {
namespace {

cls_handle_t h_class;
cls_method_handle_t h_scan;
cls_method_handle_t h_aggregate;
cls_method_handle_t h_hist;
cls_method_handle_t h_stat;

// Arrow's compute functions must be registered once per process before the first call.
void EnsureArrowCompute() {
  static std::once_flag once;
  static arrow::Status status;
  std::call_once(once, [] { status = arrow::compute::Initialize(); });
  Check(status, EIO, "initializing Arrow compute");
}

const char* MethodName(Method method) {
  switch (method) {
    case Method::kScan: return "scan";
    case Method::kAggregate: return "aggregate";
    case Method::kHist: return "hist";
    case Method::kStat: return "stat";
  }
  return "?";
}

// The method boundary: nothing thrown below may escape into the OSD.
int Run(cls_method_context_t hctx, ceph::bufferlist* in, ceph::bufferlist* out, Method method) {
  try {
    EnsureArrowCompute();
    std::string input(in->length(), '\0');
    if (!input.empty()) in->begin().copy(in->length(), input.data());
    Request request;
    // stat takes no request; whatever input it is given is ignored.
    if (method != Method::kStat) {
      request = DecodeRequest(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    }
    const auto result = Execute(hctx, request, method);
    out->append(reinterpret_cast<const char*>(result->data()),
                static_cast<unsigned>(result->size()));
    return 0;
  } catch (const ClsError& e) {
    // Messages quote the expression; keep a huge one from flooding the OSD log.
    std::string reason = e.what();
    if (reason.size() > 1024) reason = reason.substr(0, 1024) + "...";
    CLS_LOG(0, "skyhook.%s failed (errno %d): %s", MethodName(method), e.code(), reason.c_str());
    return -e.code();
  } catch (const std::bad_alloc&) {
    CLS_LOG(0, "skyhook.%s failed: out of memory", MethodName(method));
    return -ENOMEM;
  } catch (const std::exception& e) {
    CLS_LOG(0, "skyhook.%s failed: %s", MethodName(method), e.what());
    return -EIO;
  } catch (...) {
    CLS_LOG(0, "skyhook.%s failed: unknown exception", MethodName(method));
    return -EIO;
  }
}

int Scan(cls_method_context_t hctx, ceph::bufferlist* in, ceph::bufferlist* out) {
  return Run(hctx, in, out, Method::kScan);
}

int Aggregate(cls_method_context_t hctx, ceph::bufferlist* in, ceph::bufferlist* out) {
  return Run(hctx, in, out, Method::kAggregate);
}

int Hist(cls_method_context_t hctx, ceph::bufferlist* in, ceph::bufferlist* out) {
  return Run(hctx, in, out, Method::kHist);
}

int Stat(cls_method_context_t hctx, ceph::bufferlist* in, ceph::bufferlist* out) {
  return Run(hctx, in, out, Method::kStat);
}

}  // namespace
}  // namespace skyhook

CLS_INIT(skyhook) {
  using namespace skyhook;
  CLS_LOG(1, "loading class skyhook");
  cls_register("skyhook", &h_class);
  cls_register_cxx_method(h_class, "scan", CLS_METHOD_RD, Scan, &h_scan);
  cls_register_cxx_method(h_class, "aggregate", CLS_METHOD_RD, Aggregate, &h_aggregate);
  cls_register_cxx_method(h_class, "hist", CLS_METHOD_RD, Hist, &h_hist);
  cls_register_cxx_method(h_class, "stat", CLS_METHOD_RD, Stat, &h_stat);
}

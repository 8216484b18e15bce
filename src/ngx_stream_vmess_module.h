/*
 * ngx_stream_vmess_module: types shared by the glue files.
 */

#ifndef NGX_STREAM_VMESS_MODULE_H
#define NGX_STREAM_VMESS_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "vmess.h"


extern ngx_module_t  ngx_stream_vmess_module;

#endif /* NGX_STREAM_VMESS_MODULE_H */

/* err.c — names and messages for the rb_err_t table (see base.h). */
#include "base.h"

#include <stdio.h>

const char *rb_err_name(int err) {
    switch (err) {
#define RB__NAME(name, code, msg) case code: return #name;
        RB_ERRORS(RB__NAME)
#undef RB__NAME
    }
    return "UNKNOWN";
}

const char *rb_err_msg(int err) {
    switch (err) {
#define RB__MSG(name, code, msg) case code: return msg;
        RB_ERRORS(RB__MSG)
#undef RB__MSG
    }
    return "Unknown error";
}

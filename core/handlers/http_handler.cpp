#include "core/handlers/http_handler.h"

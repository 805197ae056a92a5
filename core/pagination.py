from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request


class Pagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request: Request) -> int:
        # DRF's own falls back to the default for `2.5`, `x` or `0` and clips `1000` to the maximum: a 200 that
        # answers another question than the one asked. The size is what the OpenAPI document says, or a 400.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({self.page_size_query_param: [
                f"Must be an integer from 1 to {self.max_page_size}."]})
        return int(raw)


# The query parameters a paginated list takes.
PAGE_QUERY = (Pagination.page_query_param, Pagination.page_size_query_param)

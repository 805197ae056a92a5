from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


# The query parameters a paginated list takes.
PAGE_QUERY = (Pagination.page_query_param, Pagination.page_size_query_param)

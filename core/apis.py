from rest_framework.exceptions import ValidationError


def filter_queryset(filterset_class, request, queryset):
    """Applies an explicit FilterSet; unknown values are a 400, never passed through to the ORM."""
    filterset = filterset_class(request.query_params, queryset=queryset, request=request)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return filterset.qs


def parse(serializer_class, data, **kwargs):
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def request_user(request):
    """The Django user behind a request, or None (API keys authenticate as a user without a pk)."""
    return request.user if getattr(request.user, "pk", None) else None
